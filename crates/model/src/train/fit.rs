//! The training loop: epochs of shuffled, augmented batches from
//! `ablate_data::Loader`, one optimizer step per batch, evaluation on the test
//! split after every epoch, a learning-rate schedule, checkpoints, and metrics
//! handed to a [`MetricsSink`].
//!
//! On the CPU a run is a pure function of (initial weights, data, data config,
//! `[train]` table, seed): batches depend on (seed, epoch, batch index), dropout
//! masks on (seed, iteration), and every kernel is deterministic. A run resumed
//! from a checkpoint continues bit-exactly as the uninterrupted run would have.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use ablate_data::augment::Normalize;
use ablate_data::{DataConfig, Dataset, RandomStreams, TorchGenerator};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, CheckpointError, CheckpointState, CHECKPOINT_FORMAT};
use super::config::{TrainConfig, TrainConfigError};
use super::eval::{evaluate, net_device, EvalResult};
use super::loss::cross_entropy;
use super::optim::{Optimizer, OptimizerParams};
use super::sched::LrScheduler;
use crate::layers::DropoutMasks;
use crate::ops::kernels::Kernels;
use crate::{Mode, Net};

/// One training step's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Epoch, 1-based.
    pub epoch: u32,
    /// Step within the epoch, 0-based.
    pub step: u32,
    /// Step over the whole run, 0-based.
    pub iteration: u64,
    /// The step's mean training loss (label smoothing included).
    pub loss: f32,
}

/// One finished epoch's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: u32,
    /// Mean training loss per image over the epoch (as optimized: label
    /// smoothing included; train-mode forward with dropout).
    pub train_loss: f64,
    /// Training accuracy over the epoch (train-mode logits, as PyTorch's loop).
    pub train_acc: f64,
    /// Mean test cross-entropy per image after the epoch (no smoothing).
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_acc: f64,
    /// The learning rate used during the epoch.
    pub lr: f64,
    /// Training seconds of the epoch (evaluation excluded; over all attempts
    /// when the epoch was interrupted and resumed).
    pub seconds: f64,
    /// Training images per second over the epoch.
    pub images_per_sec: f64,
}

/// The end of a completed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalRecord {
    /// The final model on the test split.
    pub eval: EvalResult,
    /// Epochs done.
    pub epochs: u32,
    /// Steps done.
    pub iterations: u64,
    /// Best test accuracy over the epochs.
    pub best_test_acc: f64,
    /// Training seconds over the run (all attempts, evaluation excluded).
    pub train_seconds: f64,
    /// Training images per second over the run.
    pub images_per_sec: f64,
}

/// Where a run's metrics go; the runner decides (files, a progress bar, ...).
///
/// On a resumed run only the new steps and epochs are reported.
pub trait MetricsSink {
    /// After every step (also the one whose loss is not finite).
    fn iteration(&mut self, r: &IterationRecord);
    /// After every epoch's evaluation.
    fn epoch(&mut self, r: &EpochRecord);
    /// Once, when all epochs are done (not for a diverged or interrupted run).
    fn finished(&mut self, r: &FinalRecord);
    /// Polled between steps: `true` checkpoints and ends the run as
    /// [`TrainOutcome::Interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// A sink that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl MetricsSink for NullSink {
    fn iteration(&mut self, _: &IterationRecord) {}
    fn epoch(&mut self, _: &EpochRecord) {}
    fn finished(&mut self, _: &FinalRecord) {}
}

/// A sink that keeps every record in memory.
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    /// Every step's record.
    pub iterations: Vec<IterationRecord>,
    /// Every epoch's record.
    pub epochs: Vec<EpochRecord>,
    /// The final record, once finished.
    pub finished: Option<FinalRecord>,
}

impl MetricsSink for MemorySink {
    fn iteration(&mut self, r: &IterationRecord) {
        self.iterations.push(r.clone());
    }
    fn epoch(&mut self, r: &EpochRecord) {
        self.epochs.push(r.clone());
    }
    fn finished(&mut self, r: &FinalRecord) {
        self.finished = Some(r.clone());
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainOutcome {
    /// All epochs done.
    Completed {
        /// Epochs done.
        epochs: u32,
    },
    /// A non-finite training loss at this step (nothing was trained on it), or a
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

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A `[train]` value is out of range.
    #[error(transparent)]
    Config(#[from] TrainConfigError),
    /// The data cannot be trained on.
    #[error("data: {0}")]
    Data(String),
    /// A tensor operation failed.
    #[error("tensor operation failed")]
    Tensor(#[from] candle_core::Error),
    /// Weights could not be applied to the network.
    #[error("cannot set the network's weights")]
    Weights(#[source] Box<crate::WeightsError>),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(Box<CheckpointError>),
}

impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(Box::new(e))
    }
}

/// What one training step produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutput {
    /// The batch's mean loss.
    pub loss: f32,
    /// Images of the batch whose arg-max logit is the label.
    pub correct: usize,
    /// Whether the loss was finite (if not, no update was made).
    pub finite: bool,
}

/// The seed of iteration `iteration`'s dropout masks: SplitMix64 of the run seed
/// mixed with the iteration, so masks depend on (seed, iteration) only.
pub fn dropout_seed(seed: u64, iteration: u64) -> u64 {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    splitmix(splitmix(seed ^ 0xD1B5_4A32_D192_ED03).wrapping_add(iteration))
}

/// The optimizer, schedule and counters of a run; [`fit`] drives it, and
/// [`Trainer::step`] is one training step on its own (benchmarks, custom loops).
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    seed: u64,
    optimizer: Optimizer,
    scheduler: LrScheduler,
    iteration: u64,
    /// With PyTorch's streams: its global generator, where the next step's masks start.
    torch: Option<TorchGenerator>,
}

impl Trainer {
    /// A trainer for `net`'s trainable parameters, at iteration 0. With
    /// `random_streams = "pytorch"` the dropout masks continue PyTorch's generator after the
    /// draws of [`Net::init_like_torch`] (which [`fit`] calls on a fresh start).
    pub fn new(net: &Net, cfg: &TrainConfig, seed: u64) -> Result<Trainer, TrainError> {
        cfg.validate()?;
        let mut optimizer = Optimizer::new(net.trainable(), OptimizerParams::from_config(cfg))?;
        // The generic path runs on the CPU what a CUDA device runs: the tensor-op update.
        optimizer.set_fused(net.kernels() != Kernels::Generic)?;
        let torch = (cfg.random_streams == RandomStreams::Pytorch)
            .then(|| TorchGenerator::at(seed, net.torch_init_draws()));
        Ok(Trainer {
            cfg: cfg.clone(),
            seed,
            optimizer,
            scheduler: LrScheduler::from_config(cfg),
            iteration: 0,
            torch,
        })
    }

    /// Draws PyTorch's global generator has made so far (`random_streams = "pytorch"`).
    pub fn torch_draws(&self) -> Option<u64> {
        self.torch.map(|g| g.draws())
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The optimizer, mutably (e.g. to switch its fused kernels off).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// The learning-rate schedule.
    pub fn scheduler(&self) -> &LrScheduler {
        &self.scheduler
    }

    /// Steps done (the next step's iteration number).
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// One training step on a batch: train-mode forward (dropout seeded by
    /// [`dropout_seed`], or PyTorch's generator), cross-entropy, backward, optimizer update. A
    /// non-finite loss skips backward and update and returns `finite: false`.
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` f32, normalized
    /// - `labels`: `[B]` u32
    pub fn step(
        &mut self,
        net: &Net,
        images: &Tensor,
        labels: &Tensor,
    ) -> Result<StepOutput, TrainError> {
        let dropout = match &mut self.torch {
            Some(g) => {
                let masks = DropoutMasks::Torch(*g);
                g.discard(net.torch_dropout_draws(images.dim(0)?));
                masks
            }
            None => DropoutMasks::Keyed(dropout_seed(self.seed, self.iteration)),
        };
        let mode = Mode::Train { dropout };
        self.iteration += 1;
        let logits = net.forward(images, mode)?;
        let loss = cross_entropy(&logits, labels, self.cfg.label_smoothing)?;
        let value = loss.to_scalar::<f32>()?;
        let correct = logits
            .detach()
            .argmax(D::Minus1)?
            .eq(labels)?
            .to_dtype(candle_core::DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()? as usize;
        if !value.is_finite() {
            return Ok(StepOutput {
                loss: value,
                correct,
                finite: false,
            });
        }
        let grads = loss.backward()?;
        self.optimizer.step(&grads)?;
        Ok(StepOutput {
            loss: value,
            correct,
            finite: true,
        })
    }
}

/// Puts back BatchNorm running statistics saved by `Net::buffers`.
fn restore_buffers(net: &mut Net, buffers: Vec<(String, Tensor)>) -> Result<(), TrainError> {
    let mut sd: HashMap<String, Tensor> = net.state_dict()?.into_iter().collect();
    sd.extend(buffers);
    net.load_state_dict(&sd)
        .map_err(|e| TrainError::Weights(Box::new(e)))?;
    Ok(())
}

/// Progress within the current epoch.
#[derive(Clone, Debug, Default)]
struct EpochProgress {
    step: u32,
    loss_sum: f64,
    correct: u64,
    seen: u64,
    seconds: f64,
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
/// - A non-finite training loss ends the run as [`TrainOutcome::Diverged`]
///   before anything is trained on it (the BatchNorm running statistics that
///   step's forward changed are put back); so does a non-finite test loss.
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
    if data.train.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no training image",
            data.name
        )));
    }
    if data.test.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no test image",
            data.name
        )));
    }
    if let Some(&l) = data
        .train
        .labels
        .iter()
        .find(|&&l| usize::from(l) >= data.num_classes())
    {
        return Err(TrainError::Data(format!(
            "dataset {} has a training label {l} but only {} classes",
            data.name,
            data.num_classes()
        )));
    }
    cfg.random_streams
        .check_data(data_cfg)
        .map_err(|e| TrainError::Data(e.to_string()))?;
    let device = net_device(net);
    let normalize = Normalize::from_config(data_cfg);
    let loader = super::batches::train_loader(&data.train, data_cfg, cfg, seed);
    let steps_per_epoch = cfg
        .max_steps_per_epoch
        .map_or(loader.num_batches(), |m| m.min(loader.num_batches()));

    // Fresh start or continuation.
    let mut epoch: u32 = 1;
    let mut progress = EpochProgress::default();
    let mut history: Vec<EpochRecord> = Vec::new();
    let mut train_seconds = 0f64;
    let mut train_images = 0u64;
    let mut trainer;
    match checkpoint_dir.filter(|d| checkpoint::exists(d)) {
        Some(dir) => {
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
            trainer = Trainer::new(net, cfg, seed)?;
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
                    reason: "has no torch_draws (needed with train.random_streams = \"pytorch\")"
                        .into(),
                })?;
                trainer.torch = Some(TorchGenerator::at(seed, draws));
            }
            epoch = state.epoch;
            progress = EpochProgress {
                step: state.step,
                loss_sum: state.epoch_loss_sum,
                correct: state.epoch_correct,
                seen: state.epoch_seen,
                seconds: state.epoch_seconds,
            };
            history = state.history;
            train_seconds = state.train_seconds;
            train_images = state.train_images;
            tracing::info!(
                "resuming from {} at epoch {epoch}, step {}",
                dir.display(),
                progress.step
            );
        }
        None => {
            if cfg.random_streams == RandomStreams::Pytorch {
                net.init_like_torch(seed)?;
            }
            trainer = Trainer::new(net, cfg, seed)?;
        }
    }

    let save = |trainer: &Trainer,
                net: &Net,
                epoch: u32,
                progress: &EpochProgress,
                history: &[EpochRecord],
                train_seconds: f64,
                train_images: u64|
     -> Result<(), TrainError> {
        let Some(dir) = checkpoint_dir else {
            return Ok(());
        };
        let state = CheckpointState {
            format: CHECKPOINT_FORMAT,
            seed,
            config: cfg.clone(),
            epoch,
            step: progress.step,
            iteration: trainer.iteration,
            epoch_loss_sum: progress.loss_sum,
            epoch_correct: progress.correct,
            epoch_seen: progress.seen,
            epoch_seconds: progress.seconds,
            train_seconds,
            train_images,
            scheduler: trainer.scheduler.clone(),
            history: history.to_vec(),
            weights_file: String::new(),
            optimizer_file: String::new(),
            torch_draws: trainer.torch_draws(),
        };
        let weights: HashMap<String, Tensor> = net.state_dict()?.into_iter().collect();
        checkpoint::write(dir, state, &weights, &trainer.optimizer.state_tensors()?)?;
        Ok(())
    };

    let mut last_eval: Option<EvalResult> = None;
    while epoch <= cfg.epochs {
        let lr = trainer.scheduler.lr();
        trainer.optimizer.set_lr(lr);
        let skip = progress.step as usize;
        let mut batches = loader.epoch_from(u64::from(epoch - 1), skip);
        let mut t0 = Instant::now();
        for _ in skip..steps_per_epoch {
            if sink.should_stop() {
                let dt = t0.elapsed().as_secs_f64();
                progress.seconds += dt;
                train_seconds += dt;
                drop(batches);
                save(
                    &trainer,
                    net,
                    epoch,
                    &progress,
                    &history,
                    train_seconds,
                    train_images,
                )?;
                return Ok(TrainOutcome::Interrupted { epoch });
            }
            let Some(batch) = batches.next() else {
                break;
            };
            let n = batch.size;
            let x = Tensor::from_vec(
                batch.images,
                (n, data.train.channels, batch.height, batch.width),
                &device,
            )?;
            let y = Tensor::from_vec(batch.labels, n, &device)?;
            let iteration = trainer.iteration;
            // The forward updates BatchNorm's running statistics before the loss is
            // known: keep them to undo a diverged step.
            let bn_before = net.buffers();
            let out = trainer.step(net, &x, &y)?;
            sink.iteration(&IterationRecord {
                epoch,
                step: progress.step,
                iteration,
                loss: out.loss,
            });
            if !out.finite {
                restore_buffers(net, bn_before)?;
                return Ok(TrainOutcome::Diverged {
                    epoch,
                    step: progress.step,
                });
            }
            progress.step += 1;
            progress.loss_sum += f64::from(out.loss) * n as f64;
            progress.correct += out.correct as u64;
            progress.seen += n as u64;
            train_images += n as u64;
            // Time is banked step by step so an interruption loses none.
            let dt = t0.elapsed().as_secs_f64();
            t0 = Instant::now();
            progress.seconds += dt;
            train_seconds += dt;
        }
        drop(batches);

        let eval = evaluate(net, &data.test, &normalize, cfg.eval_batch_size)?;
        let seen = progress.seen.max(1) as f64;
        let record = EpochRecord {
            epoch,
            train_loss: progress.loss_sum / seen,
            train_acc: progress.correct as f64 / seen,
            test_loss: eval.loss,
            test_acc: eval.accuracy,
            lr,
            seconds: progress.seconds,
            images_per_sec: if progress.seconds > 0.0 {
                progress.seen as f64 / progress.seconds
            } else {
                0.0
            },
        };
        sink.epoch(&record);
        if !eval.loss.is_finite() {
            return Ok(TrainOutcome::Diverged {
                epoch,
                step: progress.step,
            });
        }
        trainer.scheduler.step(eval.loss);
        history.push(record);
        epoch += 1;
        progress = EpochProgress::default();
        save(
            &trainer,
            net,
            epoch,
            &progress,
            &history,
            train_seconds,
            train_images,
        )?;
        last_eval = Some(eval);
    }

    let eval = match last_eval {
        Some(e) => e,
        None => evaluate(net, &data.test, &normalize, cfg.eval_batch_size)?,
    };
    let best_test_acc = history.iter().map(|r| r.test_acc).fold(0.0, f64::max);
    let epochs = history.len() as u32;
    sink.finished(&FinalRecord {
        eval,
        epochs,
        iterations: trainer.iteration,
        best_test_acc,
        train_seconds,
        images_per_sec: if train_seconds > 0.0 {
            train_images as f64 / train_seconds
        } else {
            0.0
        },
    });
    Ok(TrainOutcome::Completed { epochs })
}
