//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped (after an epoch, or between two steps when interrupted).
//!
//! A checkpoint folder holds
//! - `state.json`: the [`CheckpointState`] (format version, seed, `[train]`
//!   table, position, counters, scheduler, history) and the names of the two
//!   tensor files below;
//! - `model-eEEEE-sSSSSSS.safetensors`: the network's `state_dict` (PyTorch
//!   names, BatchNorm running statistics included);
//! - `optimizer-eEEEE-sSSSSSS.safetensors`: the optimizer state
//!   ([`crate::train::Optimizer::state_tensors`]).
//!
//! Every file is written to a temporary name, synced, then renamed; `state.json`
//! is renamed last and names the tensor files of its own position, so a crash at
//! any moment leaves either the previous or the new checkpoint, never a mix.
//! Tensor files no longer named by `state.json` are removed afterwards.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::metrics::EpochRecord;
use super::sched::LrScheduler;

/// Version of the `state.json` layout.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The name of the state file inside a checkpoint folder.
pub const STATE_FILE: &str = "state.json";

/// A checkpoint that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read, written, synced or renamed.
    #[error("checkpoint file {path}: {op} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was attempted.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `state.json` is not valid.
    #[error("checkpoint state {path} is not valid")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A tensor file could not be written, read or applied.
    #[error("checkpoint tensors {path}: {what}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// What failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: candle_core::Error,
    },
    /// The saved weights do not fit the network.
    #[error("checkpoint weights {path} do not fit the network")]
    Weights {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<crate::WeightsError>,
    },
    /// A tensor file of the checkpoint could not be written.
    #[error("cannot write checkpoint tensors {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<crate::WeightsError>,
    },
    /// The checkpoint is well formed but inconsistent or from another layout.
    #[error("checkpoint {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint belongs to a run with other settings.
    #[error("checkpoint {path} was written by a run with {key} = {saved}, this run has {current}; use another checkpoint folder or remove it")]
    Mismatch {
        /// The state file.
        path: PathBuf,
        /// The differing setting (`seed`, `train.lr`, ...).
        key: String,
        /// Its value in the checkpoint.
        saved: String,
        /// Its value in this run.
        current: String,
    },
}

/// The position and counters of a run, saved as `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT`].
    pub format: u32,
    /// The run's seed (data order, augmentation and dropout).
    pub seed: u64,
    /// The `[train]` table of the run.
    pub config: TrainConfig,
    /// The epoch to run next (1-based); `config.epochs + 1` when finished.
    pub epoch: u32,
    /// Steps of `epoch` already done (non-zero only after an interruption).
    pub step: u32,
    /// Steps done over the whole run (the next step's `iteration`).
    pub iteration: u64,
    /// Partial epoch: sum over its steps of `loss * batch size`.
    pub epoch_loss_sum: f64,
    /// Partial epoch: correctly classified training images.
    pub epoch_correct: u64,
    /// Partial epoch: training images seen.
    pub epoch_seen: u64,
    /// Partial epoch: training seconds spent.
    pub epoch_seconds: f64,
    /// Training seconds over the whole run (evaluation excluded).
    pub train_seconds: f64,
    /// Training images processed over the whole run.
    pub train_images: u64,
    /// The learning-rate schedule and its state.
    pub scheduler: LrScheduler,
    /// Every finished epoch's record.
    pub history: Vec<EpochRecord>,
    /// File name (in the same folder) of the network's weights.
    pub weights_file: String,
    /// File name (in the same folder) of the optimizer state.
    pub optimizer_file: String,
    /// With `random_streams = "pytorch"`: the draws PyTorch's global generator has made
    /// (initialization and dropout masks so far), where the next step's masks continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_draws: Option<u64>,
}

impl CheckpointState {
    /// Best test accuracy over the finished epochs (0 before any).
    pub fn best_test_acc(&self) -> f64 {
        self.history.iter().map(|r| r.test_acc).fold(0.0, f64::max)
    }

    /// Checks that this checkpoint may continue a run with `cfg` and `seed`:
    /// same seed and same `[train]` table, except `epochs` (a run may be extended).
    pub fn check_compatible(
        &self,
        path: &Path,
        cfg: &TrainConfig,
        seed: u64,
    ) -> Result<(), CheckpointError> {
        let mismatch = |key: &str, saved: String, current: String| CheckpointError::Mismatch {
            path: path.to_path_buf(),
            key: key.to_string(),
            saved,
            current,
        };
        if self.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "format {} is not supported (expected {CHECKPOINT_FORMAT})",
                    self.format
                ),
            });
        }
        if self.seed != seed {
            return Err(mismatch("seed", self.seed.to_string(), seed.to_string()));
        }
        let saved = TrainConfig {
            epochs: cfg.epochs,
            ..self.config.clone()
        };
        if &saved != cfg {
            // Name the first differing key through the JSON forms.
            let a = json_pairs(&saved);
            let b = json_pairs(cfg);
            for (k, v) in &b {
                let s = a.get(k).cloned().unwrap_or_else(|| "(absent)".into());
                if &s != v {
                    return Err(mismatch(&format!("train.{k}"), s, v.clone()));
                }
            }
            for (k, v) in &a {
                if !b.contains_key(k) {
                    return Err(mismatch(
                        &format!("train.{k}"),
                        v.clone(),
                        "(absent)".into(),
                    ));
                }
            }
            return Err(mismatch(
                "train",
                format!("{:?}", self.config),
                format!("{cfg:?}"),
            ));
        }
        Ok(())
    }
}

fn json_pairs(cfg: &TrainConfig) -> HashMap<String, String> {
    match serde_json::to_value(cfg) {
        Ok(serde_json::Value::Object(m)) => {
            m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
        }
        _ => HashMap::new(),
    }
}

/// Whether `dir` holds a checkpoint (its `state.json`).
pub fn exists(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

fn io_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn rename(from: &Path, to: &Path) -> Result<(), CheckpointError> {
    fs::rename(from, to).map_err(io_err(to, "rename"))
}

/// Writes `tensors` as safetensors to `path` atomically (the shared writer of `weights`).
fn write_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), CheckpointError> {
    let list: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::weights::write_safetensors(&list, path).map_err(|source| CheckpointError::Write {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Reads a safetensors file onto `device`.
pub fn read_tensors(
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason: "the file named by state.json is missing".into(),
        });
    }
    candle_core::safetensors::load(path, device).map_err(|source| CheckpointError::Tensor {
        path: path.to_path_buf(),
        what: "read failed",
        source,
    })
}

/// Reads and parses `dir/state.json`.
pub fn read_state(dir: &Path) -> Result<CheckpointState, CheckpointError> {
    let path = dir.join(STATE_FILE);
    let text = fs::read_to_string(&path).map_err(io_err(&path, "read"))?;
    serde_json::from_str(&text).map_err(|source| CheckpointError::Json { path, source })
}

/// Writes a checkpoint: the two tensor files, then `state.json` (whose
/// `weights_file` / `optimizer_file` are set here from the position), then
/// removes tensor files of older checkpoints.
pub fn write(
    dir: &Path,
    mut state: CheckpointState,
    weights: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> Result<(), CheckpointError> {
    fs::create_dir_all(dir).map_err(io_err(dir, "create folder"))?;
    let tag = format!("e{:04}-s{:06}", state.epoch, state.step);
    state.weights_file = format!("model-{tag}.safetensors");
    state.optimizer_file = format!("optimizer-{tag}.safetensors");
    write_tensors(&dir.join(&state.weights_file), weights)?;
    write_tensors(&dir.join(&state.optimizer_file), optimizer)?;

    let path = dir.join(STATE_FILE);
    let tmp = tmp_name(&path);
    let text = serde_json::to_string_pretty(&state).map_err(|source| CheckpointError::Json {
        path: path.clone(),
        source,
    })?;
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        f.write_all(text.as_bytes())
            .map_err(io_err(&tmp, "write"))?;
        f.sync_all().map_err(io_err(&tmp, "sync"))?;
    }
    rename(&tmp, &path)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }

    // Old tensor files are garbage now; failing to remove one is harmless.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let tensors = (name.starts_with("model-") || name.starts_with("optimizer-"))
                && (name.ends_with(".safetensors") || name.contains(".safetensors.tmp"));
            let ours = tensors || name.starts_with("state.json.tmp");
            if ours && name != state.weights_file && name != state.optimizer_file {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}
