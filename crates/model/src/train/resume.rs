//! Where a run stands ([`RunState`]: epoch, progress within it, history, time) and how that
//! position is saved to a checkpoint folder and continued from it.
//!
//! A fresh run with `random_streams = "pytorch"` first re-draws the network's weights as
//! PyTorch would ([`Net::init_like_torch`]); a resumed run loads the checkpoint's weights,
//! optimizer state, schedule, counters and generator position, after checking that it was
//! written by a run with the same seed and `[train]` table (`epochs` may grow).

use std::collections::HashMap;
use std::path::Path;

use ablate_data::{RandomStreams, TorchGenerator};
use candle_core::Tensor;

use super::checkpoint::{self, CheckpointError, CheckpointState, CHECKPOINT_FORMAT};
use super::config::TrainConfig;
use super::eval::EvalResult;
use super::metrics::EpochRecord;
use super::trainer::Trainer;
use super::TrainError;
use crate::Net;

/// Progress within the current epoch.
#[derive(Clone, Debug, Default)]
pub(super) struct EpochProgress {
    /// Steps done in this epoch.
    pub(super) step: u32,
    /// Σ over the steps of (mean batch loss × batch size), in f64.
    pub(super) loss_sum: f64,
    /// Correct training predictions so far.
    pub(super) correct: u64,
    /// Training images so far.
    pub(super) seen: u64,
    /// Training seconds so far (all attempts).
    pub(super) seconds: f64,
}

/// The position of a run between two steps.
#[derive(Clone, Debug)]
pub(super) struct RunState {
    /// The epoch in progress (1-based); `epochs + 1` when finished.
    pub(super) epoch: u32,
    /// Progress within it.
    pub(super) progress: EpochProgress,
    /// The finished epochs' records.
    pub(super) history: Vec<EpochRecord>,
    /// Training seconds over the run.
    pub(super) train_seconds: f64,
    /// Training images over the run.
    pub(super) train_images: u64,
}

impl RunState {
    fn fresh() -> RunState {
        RunState {
            epoch: 1,
            progress: EpochProgress::default(),
            history: Vec::new(),
            train_seconds: 0.0,
            train_images: 0,
        }
    }

    /// Banks `seconds` of training time in the epoch and the run.
    pub(super) fn add_seconds(&mut self, seconds: f64) {
        self.progress.seconds += seconds;
        self.train_seconds += seconds;
    }

    /// The record of the epoch in progress, evaluated as `eval`, trained at `lr`.
    pub(super) fn epoch_record(&self, eval: &EvalResult, lr: f64) -> EpochRecord {
        let p = &self.progress;
        let seen = p.seen.max(1) as f64;
        EpochRecord {
            epoch: self.epoch,
            train_loss: p.loss_sum / seen,
            train_acc: p.correct as f64 / seen,
            test_loss: eval.loss,
            test_acc: eval.accuracy,
            lr,
            seconds: p.seconds,
            images_per_sec: if p.seconds > 0.0 {
                p.seen as f64 / p.seconds
            } else {
                0.0
            },
        }
    }

    /// Closes the epoch in progress with its `record` and moves to the next.
    pub(super) fn next_epoch(&mut self, record: EpochRecord) {
        self.history.push(record);
        self.epoch += 1;
        self.progress = EpochProgress::default();
    }

    /// The best test accuracy over the finished epochs.
    pub(super) fn best_test_acc(&self) -> f64 {
        self.history.iter().map(|r| r.test_acc).fold(0.0, f64::max)
    }
}

/// The trainer and position of a run: continued from the checkpoint in `dir` when it holds
/// one, else fresh (re-drawing `net`'s weights as PyTorch would under its random streams).
pub(super) fn start_or_resume(
    net: &mut Net,
    cfg: &TrainConfig,
    seed: u64,
    dir: Option<&Path>,
) -> Result<(Trainer, RunState), TrainError> {
    let Some(dir) = dir.filter(|d| checkpoint::exists(d)) else {
        if cfg.random_streams == RandomStreams::Pytorch {
            net.init_like_torch(seed)?;
        }
        return Ok((Trainer::new(net, cfg, seed)?, RunState::fresh()));
    };
    let device = net.device().clone();
    let state = checkpoint::read_state(dir)?;
    let state_path = dir.join(checkpoint::STATE_FILE);
    state.check_compatible(&state_path, cfg, seed)?;
    let weights_path = dir.join(&state.weights_file);
    let weights = checkpoint::read_tensors(&weights_path, &device)?;
    net.load_state_dict(&weights)
        .map_err(|source| CheckpointError::Weights {
            path: weights_path.clone(),
            source: Box::new(source),
        })?;
    let mut trainer = Trainer::new(net, cfg, seed)?;
    let opt_path = dir.join(&state.optimizer_file);
    let opt_state = checkpoint::read_tensors(&opt_path, &device)?;
    trainer
        .optimizer
        .load_state_tensors(&opt_state)
        .map_err(|source| CheckpointError::Tensor {
            path: opt_path.clone(),
            what: "optimizer state does not fit the network",
            source,
        })?;
    trainer.scheduler = state.scheduler.clone();
    trainer.iteration = state.iteration;
    if trainer.torch.is_some() {
        let draws = state.torch_draws.ok_or_else(|| CheckpointError::Invalid {
            path: state_path.clone(),
            reason: "has no torch_draws (needed with train.random_streams = \"pytorch\")".into(),
        })?;
        trainer.torch = Some(TorchGenerator::at(seed, draws));
    }
    let run = RunState {
        epoch: state.epoch,
        progress: EpochProgress {
            step: state.step,
            loss_sum: state.epoch_loss_sum,
            correct: state.epoch_correct,
            seen: state.epoch_seen,
            seconds: state.epoch_seconds,
        },
        history: state.history,
        train_seconds: state.train_seconds,
        train_images: state.train_images,
    };
    tracing::info!(
        "resuming from {} at epoch {}, step {}",
        dir.display(),
        run.epoch,
        run.progress.step
    );
    Ok((trainer, run))
}

/// Writes the run's position, weights and optimizer state to the checkpoint folder `dir`
/// (nothing without one).
pub(super) fn save(
    dir: Option<&Path>,
    trainer: &Trainer,
    net: &Net,
    run: &RunState,
    cfg: &TrainConfig,
    seed: u64,
) -> Result<(), TrainError> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let p = &run.progress;
    let state = CheckpointState {
        format: CHECKPOINT_FORMAT,
        seed,
        config: cfg.clone(),
        epoch: run.epoch,
        step: p.step,
        iteration: trainer.iteration,
        epoch_loss_sum: p.loss_sum,
        epoch_correct: p.correct,
        epoch_seen: p.seen,
        epoch_seconds: p.seconds,
        train_seconds: run.train_seconds,
        train_images: run.train_images,
        scheduler: trainer.scheduler.clone(),
        history: run.history.clone(),
        weights_file: String::new(),
        optimizer_file: String::new(),
        torch_draws: trainer.torch_draws(),
    };
    let weights: HashMap<String, Tensor> = net.state_dict()?.into_iter().collect();
    checkpoint::write(dir, state, &weights, &trainer.optimizer.state_tensors()?)?;
    Ok(())
}
