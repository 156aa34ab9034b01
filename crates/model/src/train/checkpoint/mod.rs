//! Training checkpoints: everything needed to continue a run exactly where it
//! stopped (after an epoch, or between two steps when interrupted).
//!
//! A checkpoint is
//! - a state file: the [`CheckpointState`] (format version, seed, `[train]` table, position,
//!   counters, scheduler, history), the names of the two tensor files below with each one's
//!   length and SHA-256, and a SHA-256 of the state file itself ([`crate::integrity`]);
//! - `model-eEEEE-sSSSSSS-HHHHHHHH.safetensors`: the network's `state_dict` (PyTorch names,
//!   BatchNorm running statistics included);
//! - `optimizer-eEEEE-sSSSSSS-HHHHHHHH.safetensors`: the optimizer state
//!   ([`crate::train::Optimizer::state_tensors`]).
//!
//! The folder keeps the newest checkpoint (`state.json`) and the one before it
//! (`state.prev.json`). Every file is written to a temporary name, synced, then renamed, the
//! state file last, so a crash at any moment leaves whole checkpoints only. When a checkpoint is
//! read back, a damaged or missing file is named in a warning and moved to `damaged/`, and the
//! previous checkpoint is used, or none (the run starts over): a run never continues from bytes
//! that are not the ones written. The files and their checks are in `files.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::metrics::EpochRecord;
use super::sched::LrScheduler;

/// Version of the `state.json` layout.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The name of the newest checkpoint's state file inside a checkpoint folder.
pub const STATE_FILE: &str = "state.json";
/// The name of the previous checkpoint's state file (the fallback).
pub const PREVIOUS_STATE_FILE: &str = "state.prev.json";
/// The folder (inside a checkpoint folder) damaged files are moved to.
pub const DAMAGED_DIR: &str = "damaged";

mod files;

pub use files::{discard_beyond, exists, position, read_state, read_tensors, recover, write};

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
    /// A file of the checkpoint is not what was written (or is missing).
    #[error("checkpoint file {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
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
