//! The typed rows of the tables. Apart from [`TrialRow`], each is also the record a trial
//! writes into its folder (a line of `epochs.jsonl`, an entry of `final.json` or `inside.json`),
//! so a value goes from the trial to the table to the report under one definition; a table row
//! is the record plus the `trial_id` it belongs to.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of a trial: `status.json` and the `status` column of `trials.parquet`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// Planned, never started.
    Pending,
    /// A child process is (or was, if the runner was killed) training it.
    Running,
    /// Trained all planned epochs.
    Completed,
    /// The child crashed or returned an error.
    Failed,
    /// The loss became non-finite; not retried.
    Diverged,
    /// Stopped by Ctrl-C (or SIGTERM) after checkpointing; resumable.
    Interrupted,
}

impl TrialState {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Diverged,
        Self::Interrupted,
    ];

    /// The lowercase name used in files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Diverged => "diverged",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether a sweep leaves the trial alone: completed and diverged trials are final results.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Diverged)
    }

    /// Whether the trial ended with an error: failed or diverged.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Diverged)
    }
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrialState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown trial status {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// A swept value (an `axis.<key>` column of `trials.parquet`), typed as in the TOML file.
#[derive(Clone, Debug, PartialEq)]
pub enum AxisValue {
    /// An integer (`Int64` column).
    Int(i64),
    /// A float (`Float64` column; also a key swept over both integers and floats).
    Float(f64),
    /// A boolean (`Boolean` column).
    Bool(bool),
    /// A string, or any other value written as text (`String` column; also a key swept over
    /// values of different kinds).
    Str(String),
}

impl AxisValue {
    /// The numeric value of an integer or float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(v) => Some(*v as f64),
            Self::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for AxisValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// One row of `trials.parquet`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRow {
    /// Experiment name.
    pub experiment: String,
    /// Stable id of (resolved configuration, seed), 12 hex chars.
    pub trial_id: String,
    /// Stable id of the resolved configuration without the seed, 12 hex chars.
    pub variant_id: String,
    /// Human label of the variant (`baseline` or `key=value ...`).
    pub variant: String,
    /// The trial's seed.
    pub seed: u64,
    /// `model.attention` of the trial (`none` is the baseline architecture).
    pub attention: String,
    /// Swept keys and this trial's values; a key the trial's grid does not sweep is absent (a
    /// null in its column).
    pub axes: BTreeMap<String, AxisValue>,
    /// The trial's state.
    pub status: TrialState,
    /// How many times the trial was started.
    pub attempts: u32,
    /// Trainable parameters, once known.
    pub params: Option<u64>,
    /// Multiply-accumulates per image (forward), once known.
    pub macs: Option<u64>,
    /// Planned epochs.
    pub epochs_planned: u32,
    /// Epochs done.
    pub epochs_done: u32,
    /// Test accuracy after the last epoch done.
    pub final_test_acc: Option<f64>,
    /// Best test accuracy over epochs.
    pub best_test_acc: Option<f64>,
    /// Test loss after the last epoch done.
    pub final_test_loss: Option<f64>,
    /// Training wall time of the epochs done, seconds.
    pub train_seconds: f64,
    /// Mean training throughput over the epochs done.
    pub images_per_sec: Option<f64>,
    /// Device of the last attempt (`cpu`, `cuda:0`, ...).
    pub device: Option<String>,
    /// Human name of that device (`NVIDIA H200`, the CPU model).
    pub device_name: Option<String>,
    /// When the first attempt started (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When the last attempt ended (RFC 3339, UTC).
    pub ended_at: Option<String>,
    /// Exit code of the last child process.
    pub exit_code: Option<i32>,
    /// Error text (and last log lines) of failed and diverged trials.
    pub error: Option<String>,
    /// The resolved configuration as TOML.
    pub config: String,
}

/// One training step: a line of `iterations.jsonl`, a row of `iterations.parquet`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IterationLine {
    /// 1-based epoch.
    pub epoch: u32,
    /// 0-based step within the epoch.
    pub step: u32,
    /// 0-based step over the whole trial.
    pub iteration: u64,
    /// Training loss of the batch (non-finite losses are written as `null`, read back as NaN).
    #[serde(deserialize_with = "f32_or_nan")]
    pub loss: f32,
}

/// One epoch: a line of `epochs.jsonl`, a row of `epochs.parquet`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EpochLine {
    /// 1-based epoch.
    pub epoch: u32,
    /// Mean training loss.
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    /// Training accuracy (fraction).
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_acc: f64,
    /// Test loss.
    #[serde(deserialize_with = "f64_or_nan")]
    pub test_loss: f64,
    /// Test accuracy (fraction).
    #[serde(deserialize_with = "f64_or_nan")]
    pub test_acc: f64,
    /// Learning rate used during the epoch.
    #[serde(deserialize_with = "f64_or_nan")]
    pub lr: f64,
    /// Training time of the epoch (evaluation excluded).
    #[serde(deserialize_with = "f64_or_nan")]
    pub seconds: f64,
    /// Training throughput.
    #[serde(deserialize_with = "f64_or_nan")]
    pub images_per_sec: f64,
}

/// serde_json writes non-finite floats as `null`; a diverged trial's records hold them.
fn f32_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
}

/// See [`f32_or_nan`].
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Result of the final model on the test images of one true class: an entry of `final.json`,
/// a row of `classes.parquet` (whose `accuracy` is [`ClassLine::accuracy`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassLine {
    /// Class index.
    pub class_index: u32,
    /// Class name.
    pub class: String,
    /// Correctly classified test images of the class.
    pub correct: u64,
    /// Test images of the class.
    pub total: u64,
    /// Row of the confusion matrix: predictions per predicted class index.
    pub confusion: Vec<u64>,
}

impl ClassLine {
    /// `correct / total` (0 for a class without test images).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Mean gate values of one channel-attention module: an entry of `inside.json`, one row of
/// `gates.parquet` per class and channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateBlock {
    /// Block (1..3).
    pub block: u32,
    /// `[class][channel]` mean excitation over the test images of each class.
    pub mean_gate: Vec<Vec<f32>>,
}

/// One sample image of the fixed choice: an entry of `inside.json`, a row of `samples.parquet`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SampleImage {
    /// 0-based sample index.
    pub sample: u32,
    /// True class index.
    pub class_index: u32,
    /// True class name.
    pub class: String,
    /// Predicted class index.
    pub predicted: u32,
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
    /// Un-normalized pixels, `[3, H, W]` channel-major.
    pub pixels: Vec<u8>,
}

/// One feature map, a channel of a block's conv output (before BN) on one sample image: an
/// entry of `inside.json`, a row of `feature_maps.parquet`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureMap {
    /// 0-based sample index.
    pub sample: u32,
    /// Block (1..3).
    pub block: u32,
    /// Channel.
    pub channel: u32,
    /// Map height.
    pub height: u32,
    /// Map width.
    pub width: u32,
    /// Row-major values.
    pub values: Vec<f32>,
}

/// The rows of one trial in a per-trial table: its id and its records.
pub type TrialRows<'a, T> = (&'a str, &'a [T]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_round_trip_as_nan() {
        let l = IterationLine {
            epoch: 1,
            step: 0,
            iteration: 0,
            loss: f32::NAN,
        };
        let text = serde_json::to_string(&l).unwrap();
        assert!(text.contains("null"), "{text}");
        let back: IterationLine = serde_json::from_str(&text).unwrap();
        assert!(back.loss.is_nan());
    }

    #[test]
    fn trial_states_parse_back_from_their_names() {
        for s in TrialState::ALL {
            assert_eq!(s.as_str().parse::<TrialState>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        let err = "done".parse::<TrialState>().unwrap_err();
        assert!(err.contains("completed"), "{err}");
    }
}
