//! The per-trial records kept in a trial folder (`results/<name>/trials/<id>/`).
//!
//! A trial folder is the source of truth of a sweep (see `docs/results.md`):
//!
//! | file | written by | content |
//! | --- | --- | --- |
//! | `config.toml` | the sweep | the trial's identity ([`header_row`]: ids, variant, seed, swept values) and its resolved configuration |
//! | `status.json` | sweep and child, atomically | [`TrialStatus`] |
//! | `iterations.jsonl` | the child | one [`IterationLine`] per training step |
//! | `epochs.jsonl` | the child, fsynced per epoch | one [`EpochLine`] per epoch |
//! | `final.json` | the child, at the end | [`FinalJson`]: final metrics, per-class accuracy |
//! | `inside.json` | the child, completed trials | [`InsideJson`]: gates, sample images, feature maps |
//!
//! The records that are also table rows (a line of `epochs.jsonl` is a row of
//! `epochs.parquet`) are defined by the results schema, `ablate_schema`, and re-exported here;
//! the JSON file helpers are in [`super::json_files`].
//!
//! The JSON files are sealed with a SHA-256 and every JSON-lines record with a CRC-32
//! ([`ablate_model::integrity`], written and checked by [`super::json_files`]); a damaged file or
//! line is [`RecordError::Damaged`], handled in [`super::damage`].

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use super::json_files::{
    jsonl_line, now_rfc3339, read_json, read_json_opt, read_jsonl, read_jsonl_prefix,
    read_last_jsonl, tail_lines, truncate_jsonl, write_atomic, write_json_atomic, RecordError,
};
pub use ablate_schema::{
    AxisValue, ClassLine, EpochLine, FeatureMap, GateBlock, IterationLine, SampleImage, TrialRow,
    TrialState,
};

/// File names inside a trial folder.
pub mod files {
    /// The trial's identity ([`super::header_row`]) and resolved configuration.
    pub const CONFIG: &str = "config.toml";
    /// The trial's status ([`super::TrialStatus`]).
    pub const STATUS: &str = "status.json";
    /// The trial's log (tracing output of the child, its stdout and stderr).
    pub const LOG: &str = "log.txt";
    /// Checkpoint folder handed to the trainer.
    pub const CHECKPOINT: &str = "checkpoint";
    /// Final weights.
    pub const MODEL: &str = "model.safetensors";
    /// One JSON line per epoch.
    pub const EPOCHS: &str = "epochs.jsonl";
    /// One JSON line per training step.
    pub const ITERATIONS: &str = "iterations.jsonl";
    /// Final metrics.
    pub const FINAL: &str = "final.json";
    /// Looking-inside data of a completed trial.
    pub const INSIDE: &str = "inside.json";
}

/// The part of `config.toml` the tables need. Deliberately lenient (no `deny_unknown_fields`):
/// the full file is validated by `config::read_trial_config` when the trial runs; rebuilding
/// the tables only reads this header, so old trial folders stay readable.
#[derive(Deserialize)]
struct ConfigHeader {
    experiment: String,
    seed: u64,
    trial_id: String,
    variant_id: String,
    variant: String,
    #[serde(default)]
    axes: toml::Table,
    #[serde(default)]
    model: ModelHeader,
    #[serde(default)]
    train: TrainHeader,
}

#[derive(Deserialize)]
struct ModelHeader {
    #[serde(default = "default_attention")]
    attention: String,
}

impl Default for ModelHeader {
    fn default() -> Self {
        Self {
            attention: default_attention(),
        }
    }
}

fn default_attention() -> String {
    "none".into()
}

#[derive(Deserialize, Default)]
struct TrainHeader {
    #[serde(default)]
    epochs: u32,
}

/// The row of `trials.parquet` as far as a trial's `config.toml` says (`text`; `path` names it
/// in errors): its identity (ids, variant, seed, `model.attention`, swept values), its planned
/// epochs and the configuration itself; everything its other records say is left at "not
/// started" (pending, no attempt, nothing done).
pub fn header_row(path: &Path, text: &str) -> Result<TrialRow, RecordError> {
    let h: ConfigHeader = toml::from_str(text).map_err(|source| RecordError::Toml {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(TrialRow {
        experiment: h.experiment,
        trial_id: h.trial_id,
        variant_id: h.variant_id,
        variant: h.variant,
        seed: h.seed,
        attention: h.model.attention,
        axes: h
            .axes
            .iter()
            .map(|(k, v)| (k.clone(), axis_value(v)))
            .collect(),
        status: TrialState::Pending,
        attempts: 0,
        params: None,
        macs: None,
        epochs_planned: h.train.epochs,
        epochs_done: 0,
        final_test_acc: None,
        best_test_acc: None,
        final_test_loss: None,
        train_seconds: 0.0,
        images_per_sec: None,
        device: None,
        device_name: None,
        started_at: None,
        ended_at: None,
        exit_code: None,
        error: None,
        config: text.to_string(),
    })
}

/// A swept value from the TOML file: integers, floats, booleans and strings keep their type,
/// anything else (arrays, tables, dates) becomes its TOML text.
pub fn axis_value(value: &toml::Value) -> AxisValue {
    match value {
        toml::Value::Integer(i) => AxisValue::Int(*i),
        toml::Value::Float(f) => AxisValue::Float(*f),
        toml::Value::Boolean(b) => AxisValue::Bool(*b),
        toml::Value::String(s) => AxisValue::Str(s.clone()),
        other => AxisValue::Str(other.to_string()),
    }
}

/// `status.json`: the state of a trial. Written atomically by the sweep (before launching and
/// after the child exits) and by the child (at start, after each epoch, at the end).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrialStatus {
    /// Current state.
    pub status: TrialState,
    /// How many times the trial was started (all sweeps together).
    #[serde(default)]
    pub attempts: u32,
    /// Exit code of the last child process, if it exited normally.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal that killed the last child process, if any.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Error text (and the last log lines) for failed and diverged trials.
    #[serde(default)]
    pub error: Option<String>,
    /// Device of the last attempt (`cpu`, `cuda:0`, ...).
    #[serde(default)]
    pub device: Option<String>,
    /// Human name of that device (`NVIDIA H200`, the CPU model), when known.
    #[serde(default)]
    pub device_name: Option<String>,
    /// When the first attempt started (RFC 3339, UTC).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When the last attempt ended (RFC 3339, UTC).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Training wall time over all attempts (epochs whose records were kept).
    #[serde(default)]
    pub train_seconds: f64,
    /// Epochs done so far (as recorded in `epochs.jsonl`).
    #[serde(default)]
    pub epochs_done: u32,
    /// Trainable parameters, once the child built the net.
    #[serde(default)]
    pub params: Option<u64>,
    /// Multiply-accumulates per image, once the child built the net.
    #[serde(default)]
    pub macs: Option<u64>,
    /// Process id of the running child.
    #[serde(default)]
    pub pid: Option<u32>,
}

impl TrialStatus {
    /// A trial that never ran.
    pub fn pending() -> Self {
        Self {
            status: TrialState::Pending,
            attempts: 0,
            exit_code: None,
            signal: None,
            error: None,
            device: None,
            device_name: None,
            started_at: None,
            ended_at: None,
            train_seconds: 0.0,
            epochs_done: 0,
            params: None,
            macs: None,
            pid: None,
        }
    }
}
/// `final.json`: the trial's end, written by the child when training stops.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FinalJson {
    /// `completed`, `diverged` or `interrupted`.
    pub outcome: TrialState,
    /// Epochs done.
    pub epochs_done: u32,
    /// Test accuracy after the last epoch done.
    pub final_test_acc: Option<f64>,
    /// Test loss after the last epoch done.
    pub final_test_loss: Option<f64>,
    /// Best test accuracy over epochs.
    pub best_test_acc: Option<f64>,
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Per-class results of the final model (completed trials).
    #[serde(default)]
    pub classes: Vec<ClassLine>,
    /// Error text, for diverged trials.
    #[serde(default)]
    pub error: Option<String>,
}
/// `inside.json`: looking-inside data of a completed trial.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct InsideJson {
    /// Mean gates per class (channel-attention models only).
    #[serde(default)]
    pub gates: Vec<GateBlock>,
    /// The fixed sample images.
    #[serde(default)]
    pub samples: Vec<SampleImage>,
    /// First channels of each block's conv output on the samples.
    #[serde(default)]
    pub feature_maps: Vec<FeatureMap>,
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        let mut s = TrialStatus::pending();
        s.status = TrialState::Failed;
        s.exit_code = Some(101);
        s.error = Some("boom".into());
        s.device_name = Some("NVIDIA H200".into());
        write_json_atomic(&p, &s).unwrap();
        let back: TrialStatus = read_json(&p).unwrap();
        assert_eq!(back, s);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("\"status\": \"failed\""));
    }

    #[test]
    fn a_status_without_device_name_still_reads() {
        let s: TrialStatus =
            serde_json::from_str(r#"{"status": "completed", "device": "cpu"}"#).unwrap();
        assert_eq!((s.device.as_deref(), s.device_name), (Some("cpu"), None));
    }

    #[test]
    fn swept_values_keep_their_toml_type() {
        assert_eq!(axis_value(&toml::Value::Integer(3)), AxisValue::Int(3));
        assert_eq!(
            axis_value(&toml::Value::Boolean(true)),
            AxisValue::Bool(true)
        );
        let list = toml::Value::Array(vec![toml::Value::Integer(1)]);
        assert_eq!(axis_value(&list), AxisValue::Str("[1]".into()));
    }
}
