//! The training loop: [`fit`] trains a network for the epochs of a `[train]` table, as a short
//! loop over named steps, each in the file that owns it:
//!
//! 1. resume or start (`resume.rs`): the checkpoint's position, weights and optimizer state,
//!    or a fresh trainer;
//! 2. the epoch's steps (`epoch.rs`): shuffled, augmented batches from `ablate_data::Loader`,
//!    one optimizer step each (`trainer.rs`), records to the [`MetricsSink`];
//! 3. evaluation on the test split (`eval.rs`) and the epoch's record, then the learning-rate
//!    schedule (`sched.rs`);
//! 4. a checkpoint (`resume.rs`, `checkpoint.rs`) after every epoch and on interruption.
//!
//! On the CPU a run is a pure function of (initial weights, data, data config,
//! `[train]` table, seed): batches depend on (seed, epoch, batch index), dropout
//! masks on (seed, iteration), and every kernel is deterministic. A run resumed
//! from a checkpoint continues bit-exactly as the uninterrupted run would have.

use std::path::Path;
use std::sync::Arc;

use ablate_data::augment::{Augment, Normalize};
use ablate_data::{DataConfig, DataConfigError, Dataset, Loader, LoaderConfig};
use serde::{Deserialize, Serialize};

use super::checkpoint::CheckpointError;
use super::config::{TrainConfig, TrainConfigError};
use super::epoch::{train_epoch, EpochEnd, EpochInput};
use super::eval::{evaluate, EvalResult};
use super::metrics::{FinalRecord, MetricsSink, SinkError};
use super::resume::{save, start_or_resume, RunState};
use crate::Net;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainOutcome {
    /// All epochs done.
    Completed {
        /// Epochs done.
        epochs: u32,
    },
    /// A non-finite training loss at this step (on the CPU nothing was trained on it), or a
    /// non-finite test loss after this epoch (then `step` is the epoch's step count).
    Diverged {
        /// Epoch, 1-based.
        epoch: u32,
        /// Step within the epoch, 0-based.
        step: u32,
    },
    /// The sink asked to stop; a checkpoint was written (when a folder was given)
    /// and the run continues from it on the next call.
    Interrupted {
        /// The epoch that was in progress (1-based).
        epoch: u32,
    },
}

/// Why a dataset cannot be trained on.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The training split is empty.
    #[error("dataset {dataset} has no training image")]
    NoTrainImages {
        /// The dataset's name.
        dataset: String,
    },
    /// The test split is empty.
    #[error("dataset {dataset} has no test image")]
    NoTestImages {
        /// The dataset's name.
        dataset: String,
    },
    /// A training label is not a class of the dataset.
    #[error("dataset {dataset} has a training label {label} but only {classes} classes")]
    LabelOutOfRange {
        /// The dataset's name.
        dataset: String,
        /// The label found.
        label: u8,
        /// The number of classes.
        classes: usize,
    },
    /// The data settings cannot be drawn with the run's random streams (the error names the
    /// `data` key).
    #[error(transparent)]
    Streams(DataConfigError),
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A `[train]` value is out of range.
    #[error(transparent)]
    Config(#[from] TrainConfigError),
    /// The data cannot be trained on.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A tensor operation failed.
    #[error("tensor operation failed")]
    Tensor(#[from] candle_core::Error),
    /// Weights could not be applied to the network.
    #[error("cannot set the network's weights")]
    Weights(#[source] Box<crate::WeightsError>),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(Box<CheckpointError>),
    /// The metrics sink could not take a record.
    #[error("cannot record the run's metrics")]
    Metrics(#[source] SinkError),
}

impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(Box::new(e))
    }
}

/// Trains `net` on `data.train` for `cfg.epochs` epochs, evaluating on
/// `data.test` after each, and returns how the run ended.
///
/// - Batches come from an `ablate_data::Loader` with `data_cfg`'s augmentation
///   and normalization, shuffled from `seed`; dropout masks from (seed, iteration).
/// - With `cfg.random_streams = Pytorch`, a fresh start first re-draws `net`'s weights with
///   [`Net::init_like_torch`]`(seed)`, and the batches and dropout masks come from PyTorch's
///   generators as the reference script draws them (docs/training.md).
/// - With `checkpoint_dir`, a checkpoint is written after every epoch and on
///   interruption; if the folder already holds one, the run continues from it
///   (same seed and `[train]` table required, except `epochs`, which may grow).
/// - A non-finite training loss ends the run as [`TrainOutcome::Diverged`] (on the CPU
///   before anything is trained on it, with the BatchNorm running statistics that step's
///   forward changed put back; off the CPU when the loss is read back, see `epoch.rs`); so
///   does a non-finite test loss.
pub fn fit(
    net: &mut Net,
    data: &Dataset,
    data_cfg: &DataConfig,
    cfg: &TrainConfig,
    seed: u64,
    checkpoint_dir: Option<&Path>,
    sink: &mut dyn MetricsSink,
) -> Result<TrainOutcome, TrainError> {
    cfg.validate()?;
    check_data(data, data_cfg, cfg)?;
    let normalize = Normalize::from_config(data_cfg);
    let loader = training_loader(data, data_cfg, cfg, seed);
    let input = EpochInput {
        steps: cfg
            .max_steps_per_epoch
            .map_or(loader.num_batches(), |m| m.min(loader.num_batches())),
        loader: &loader,
        channels: data.train.channels,
    };
    let (mut trainer, mut run) = start_or_resume(net, cfg, seed, checkpoint_dir)?;
    let mut last_eval: Option<EvalResult> = None;
    while run.epoch <= cfg.epochs {
        let lr = trainer.scheduler.lr();
        trainer.optimizer.set_lr(lr);
        match train_epoch(net, &mut trainer, &mut run, &input, sink)? {
            EpochEnd::Done => {}
            EpochEnd::Diverged { step } => {
                return Ok(TrainOutcome::Diverged {
                    epoch: run.epoch,
                    step,
                })
            }
            EpochEnd::Interrupted => {
                save(checkpoint_dir, &trainer, net, &run, cfg, seed)?;
                return Ok(TrainOutcome::Interrupted { epoch: run.epoch });
            }
        }
        let eval = evaluate(net, &data.test, &normalize, cfg.eval_batch_size)?;
        let record = run.epoch_record(&eval, lr);
        sink.epoch(&record).map_err(TrainError::Metrics)?;
        if !eval.loss.is_finite() {
            return Ok(TrainOutcome::Diverged {
                epoch: run.epoch,
                step: run.progress.step,
            });
        }
        trainer.scheduler.step(eval.loss);
        run.next_epoch(record);
        save(checkpoint_dir, &trainer, net, &run, cfg, seed)?;
        last_eval = Some(eval);
    }
    let eval = match last_eval {
        Some(e) => e,
        None => evaluate(net, &data.test, &normalize, cfg.eval_batch_size)?,
    };
    sink.finished(&final_record(eval, &run, trainer.iteration()))
        .map_err(TrainError::Metrics)?;
    Ok(TrainOutcome::Completed {
        epochs: run.history.len() as u32,
    })
}

/// Checks that `data` can be trained on with `cfg`.
fn check_data(data: &Dataset, data_cfg: &DataConfig, cfg: &TrainConfig) -> Result<(), DataError> {
    let dataset = || data.name.clone();
    if data.train.is_empty() {
        return Err(DataError::NoTrainImages { dataset: dataset() });
    }
    if data.test.is_empty() {
        return Err(DataError::NoTestImages { dataset: dataset() });
    }
    let classes = data.num_classes();
    if let Some(&label) = data
        .train
        .labels
        .iter()
        .find(|&&l| usize::from(l) >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            dataset: dataset(),
            label,
            classes,
        });
    }
    cfg.random_streams
        .check_data(data_cfg)
        .map_err(DataError::Streams)
}

/// The shuffled, augmented training batches of a run.
fn training_loader(data: &Dataset, data_cfg: &DataConfig, cfg: &TrainConfig, seed: u64) -> Loader {
    Loader::new(
        Arc::new(data.train.clone()),
        LoaderConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            drop_last: false,
            seed,
            augment: Augment::from_config(data_cfg),
            normalize: Normalize::from_config(data_cfg),
            prefetch: 4,
            streams: cfg.random_streams,
        },
    )
}

/// The record of a completed run.
fn final_record(eval: EvalResult, run: &RunState, iterations: u64) -> FinalRecord {
    FinalRecord {
        eval,
        epochs: run.history.len() as u32,
        iterations,
        best_test_acc: run.best_test_acc(),
        train_seconds: run.train_seconds,
        images_per_sec: if run.train_seconds > 0.0 {
            run.train_images as f64 / run.train_seconds
        } else {
            0.0
        },
    }
}
