//! The per-trial records kept in a trial folder (`results/<name>/trials/<id>/`).
//!
//! A trial folder is the source of truth of a sweep (see `docs/results.md`):
//!
//! | file | written by | content |
//! | --- | --- | --- |
//! | `config.toml` | the sweep | the trial's identity ([`TrialMeta`]: ids, variant, seed, swept values) and its resolved configuration |
//! | `status.json` | sweep and child, atomically | [`TrialStatus`] |
//! | `iterations.jsonl` | the child | one [`IterationLine`] per training step |
//! | `epochs.jsonl` | the child, fsynced per epoch | one [`EpochLine`] per epoch |
//! | `final.json` | the child, at the end | [`FinalJson`]: final metrics, per-class accuracy |
//! | `inside.json` | the child, completed trials | [`InsideJson`]: gates, sample images, feature maps |
//!
//! The JSON files are sealed with a SHA-256 and every JSON-lines record with a CRC-32
//! ([`ablate_model::integrity`]); a damaged file or line is [`RecordError::Damaged`], handled in
//! [`super::damage`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ablate_model::integrity;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Version of the Parquet schema written by [`crate::results::parquet`] (docs/results.md).
pub const SCHEMA_VERSION: u32 = 1;

/// File names inside a trial folder.
pub mod files {
    /// The trial's identity ([`super::TrialMeta`]) and resolved configuration.
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

/// Errors reading or writing a trial record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A JSON file is malformed.
    #[error("malformed json in {path}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `config.toml` is not TOML or lacks a header key.
    #[error("malformed trial config {path}")]
    Toml {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: toml::de::Error,
    },
    /// A file or line whose checksum does not match what was written.
    #[error("{} is damaged{}: {reason}", path.display(), line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number, for a JSON-lines record.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A JSON-lines file has a malformed line (other than a torn last line).
    #[error("malformed line {line} in {path}")]
    JsonLine {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl RecordError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The state of a trial, as stored in `status.json` and the `status` column of `trials.parquet`.
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
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What identifies a trial in the tables: the header of its `config.toml` (written by the sweep)
/// plus the two configuration keys the tables show (`model.attention`, `train.epochs`).
#[derive(Clone, Debug, PartialEq)]
pub struct TrialMeta {
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
    /// `model.attention` of the trial.
    pub attention: String,
    /// Planned number of epochs (`train.epochs`).
    pub epochs_planned: u32,
    /// Swept keys and this trial's values (keys not swept by the trial's grid are absent).
    pub axes: BTreeMap<String, AxisValue>,
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

impl TrialMeta {
    /// Reads the header of a trial's `config.toml` text (`path` names it in errors).
    pub fn from_config_toml(path: &Path, text: &str) -> Result<Self, RecordError> {
        let h: ConfigHeader = toml::from_str(text).map_err(|source| RecordError::Toml {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            experiment: h.experiment,
            trial_id: h.trial_id,
            variant_id: h.variant_id,
            variant: h.variant,
            seed: h.seed,
            attention: h.model.attention,
            epochs_planned: h.train.epochs,
            axes: h
                .axes
                .iter()
                .map(|(k, v)| (k.clone(), AxisValue::from_toml(v)))
                .collect(),
        })
    }
}

/// A swept value, typed as in the TOML file.
#[derive(Clone, Debug, PartialEq)]
pub enum AxisValue {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string, or any other value written as text (lists, tables).
    Str(String),
}

impl AxisValue {
    /// Converts a TOML value: integers, floats, booleans and strings keep their type, anything
    /// else (arrays, tables, dates) becomes its TOML text.
    pub fn from_toml(value: &toml::Value) -> Self {
        match value {
            toml::Value::Integer(i) => Self::Int(*i),
            toml::Value::Float(f) => Self::Float(*f),
            toml::Value::Boolean(b) => Self::Bool(*b),
            toml::Value::String(s) => Self::Str(s.clone()),
            other => Self::Str(other.to_string()),
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

/// One line of `iterations.jsonl`.
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

/// One line of `epochs.jsonl`.
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

/// Per-class result of the final model on the test split.
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

/// Mean gate values of one channel-attention module: `mean_gate[class][channel]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateBlock {
    /// Block (1..3).
    pub block: u32,
    /// `[class][channel]` mean excitation over the test images of each class.
    pub mean_gate: Vec<Vec<f32>>,
}

/// One sample image of the fixed choice.
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

/// One feature map: a channel of a block's conv output (before BN) on one sample.
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

/// Current time as RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Reads, verifies and parses a JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RecordError> {
    let bytes = fs::read(path).map_err(|e| RecordError::io(path, e))?;
    parse_sealed(path, &bytes)
}

/// Reads a JSON file that may be absent.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RecordError> {
    match fs::read(path) {
        Ok(bytes) => parse_sealed(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::io(path, e)),
    }
}

/// Checks a sealed JSON file's checksum (a file from before checksums is read as is) and parses it.
fn parse_sealed<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, RecordError> {
    let opened = integrity::open_json(bytes).map_err(|d| RecordError::Damaged {
        path: path.to_path_buf(),
        line: None,
        reason: d.to_string(),
    })?;
    serde_json::from_slice(&opened.json).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One JSON-lines record, sealed with its CRC-32, with its newline.
pub fn jsonl_line<T: Serialize>(path: &Path, rec: &T) -> Result<Vec<u8>, RecordError> {
    let json = serde_json::to_vec(rec).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut line = integrity::seal_line(&json);
    line.push(b'\n');
    Ok(line)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsynced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| RecordError::io(path, e))?;
    tmp.write_all(bytes).map_err(|e| RecordError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| RecordError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| RecordError::io(path, e.error))?;
    Ok(())
}

/// Serializes `value` as pretty JSON, sealed with its SHA-256, and writes it atomically.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RecordError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &integrity::seal_json(&bytes))
}

/// Reads a JSON-lines file. A torn last line (no trailing newline, as left by a killed writer)
/// is ignored; any other malformed line is an error. A missing file reads as empty.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, RecordError> {
    match read_text(path)? {
        Some(text) => parse_jsonl(path, &text),
        None => Ok(Vec::new()),
    }
}

/// A text file's content (bytes that are not UTF-8, e.g. damaged ones, replaced so that the
/// record's checksum reports them), `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, RecordError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::io(path, e)),
    }
}

fn parse_jsonl<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>, RecordError> {
    let (records, damage) = parse_jsonl_prefix(path, text);
    match damage {
        Some(e) => Err(e),
        None => Ok(records),
    }
}

/// Reads a JSON-lines file up to its first damaged or malformed record: the records before it,
/// and the error of that record (`None` when the whole file is intact). A torn last line is
/// ignored, as by [`read_jsonl`].
pub fn read_jsonl_prefix<T: DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, Option<RecordError>), RecordError> {
    Ok(match read_text(path)? {
        Some(text) => parse_jsonl_prefix(path, &text),
        None => (Vec::new(), None),
    })
}

fn parse_jsonl_prefix<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> (Vec<T>, Option<RecordError>) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body = match integrity::open_line(line) {
            Ok(b) => b,
            Err(d) => {
                let e = RecordError::Damaged {
                    path: path.to_path_buf(),
                    line: Some(i + 1),
                    reason: d.to_string(),
                };
                return (out, Some(e));
            }
        };
        match serde_json::from_str(&body) {
            Ok(rec) => out.push(rec),
            Err(source) => {
                let e = RecordError::JsonLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                };
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

/// Rewrites a JSON-lines file keeping only the records for which `keep` is true (and dropping a
/// torn last line); leaves the file untouched when nothing is dropped. Used when a trial resumes
/// from a checkpoint older than its last records, which would otherwise be duplicated.
/// Returns the number of records kept.
pub fn truncate_jsonl<T>(path: &Path, keep: impl Fn(&T) -> bool) -> Result<usize, RecordError>
where
    T: DeserializeOwned + Serialize,
{
    let Some(text) = read_text(path)? else {
        return Ok(0);
    };
    let records: Vec<T> = parse_jsonl(path, &text)?;
    let kept: Vec<&T> = records.iter().filter(|r| keep(r)).collect();
    if kept.len() == records.len() && (text.is_empty() || text.ends_with('\n')) {
        return Ok(kept.len());
    }
    let mut out = Vec::with_capacity(text.len());
    for rec in &kept {
        out.extend_from_slice(&jsonl_line(path, rec)?);
    }
    write_atomic(path, &out)?;
    Ok(kept.len())
}

/// Reads the last complete record of a JSON-lines file cheaply (only its tail is read).
/// Returns `None` when the file is missing, empty or its tail does not parse.
pub fn read_last_jsonl<T: DeserializeOwned>(path: &Path) -> Option<T> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(4096);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let end = text.rfind('\n')?;
    let body = &text[..end];
    let line = match body.rfind('\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return None,
    };
    serde_json::from_str(&integrity::open_line(line).ok()?).ok()
}

/// Returns the last `n` lines of a text file (lossy UTF-8), or an empty list if it is missing.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|s| s.to_string()).collect()
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
        write_json_atomic(&p, &s).unwrap();
        let back: TrialStatus = read_json(&p).unwrap();
        assert_eq!(back, s);
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("\"status\": \"failed\""));
    }

    #[test]
    fn jsonl_ignores_torn_last_line_and_truncates_from_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("iterations.jsonl");
        let mut text = String::new();
        for epoch in 1..=3u32 {
            for step in 0..2u32 {
                let l = IterationLine {
                    epoch,
                    step,
                    iteration: ((epoch - 1) * 2 + step) as u64,
                    loss: 1.0,
                };
                text.push_str(&serde_json::to_string(&l).unwrap());
                text.push('\n');
            }
        }
        text.push_str("{\"epoch\":4,\"st"); // torn
        std::fs::write(&p, &text).unwrap();
        let all: Vec<IterationLine> = read_jsonl(&p).unwrap();
        assert_eq!(all.len(), 6);
        let last: IterationLine = read_last_jsonl(&p).unwrap();
        assert_eq!((last.epoch, last.step), (3, 1));
        let kept = truncate_jsonl(&p, |l: &IterationLine| l.epoch < 3).unwrap();
        assert_eq!(kept, 4);
        let after: Vec<IterationLine> = read_jsonl(&p).unwrap();
        assert_eq!(after.len(), 4);
        assert!(after.iter().all(|l| l.epoch < 3));
        assert!(std::fs::read_to_string(&p).unwrap().ends_with('\n'));
    }

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
    fn malformed_middle_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epochs.jsonl");
        std::fs::write(&p, "not json\n{}\n").unwrap();
        let err = read_jsonl::<EpochLine>(&p).unwrap_err();
        assert!(
            matches!(err, RecordError::JsonLine { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn tail_lines_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.txt");
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let t = tail_lines(&p, 20);
        assert_eq!(t.len(), 20);
        assert_eq!(t[0], "line 30");
        assert_eq!(t[19], "line 49");
        assert!(tail_lines(&dir.path().join("missing"), 5).is_empty());
    }
}
