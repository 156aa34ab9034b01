//! The trainer: the `[train]` table ([`TrainConfig`]), PyTorch-exact optimizers
//! ([`Optimizer`]: Adam, SGD) and learning-rate schedules ([`LrScheduler`]),
//! cross-entropy with label smoothing ([`cross_entropy`]), the training loop
//! ([`fit`](fn@fit)) and its steps, evaluation ([`evaluate`]) and the "looking inside" helpers
//! ([`class_gates`], [`feature_maps`]).
//!
//! Module map, in the order a run uses them:
//! - `config.rs`: the `[train]` table and its validation.
//! - `fit.rs`: [`fit`](fn@fit), the loop over epochs; [`TrainOutcome`], [`TrainError`].
//! - `resume.rs`: the run's position, fresh start or resume, saving it.
//! - `batches.rs`: [`train_loader`], the training batches (data settings and seed only).
//! - `epoch.rs`: one epoch's steps; deferred read-back off the CPU.
//! - `trainer.rs`: [`Trainer`], one training step; [`dropout_seed`].
//! - `optim.rs`, `sched.rs`, `loss.rs`: the update rule, the schedule, the loss.
//! - `eval.rs`: evaluation on a whole image set.
//! - `metrics.rs`: the records and the [`MetricsSink`] they go to.
//! - `checkpoint/`: the checkpoint folder's files (`mod.rs`: the state and its errors; `files.rs`:
//!   writing, and reading back with every byte verified, falling back to the previous checkpoint).
//! - `inspect.rs`: gates per class, feature maps.
//!
//! `docs/training.md` documents the keys and the semantics.

pub mod batches;
pub mod checkpoint;
pub mod config;
mod epoch;
pub mod eval;
pub mod fit;
pub mod inspect;
pub mod loss;
pub mod metrics;
pub mod optim;
mod resume;
pub mod sched;
pub mod trainer;

pub use batches::train_loader;
pub use checkpoint::{CheckpointError, CheckpointState};
pub use config::{OptimizerKind, SchedulerKind, TrainConfig, TrainConfigError};
pub use epoch::DEVICE_READBACK_STEPS;
pub use eval::{evaluate, EvalResult};
pub use fit::{fit, DataError, TrainError, TrainOutcome};
pub use inspect::{class_gates, feature_maps, FeatureMap, FeatureMaps, GateStat, SamplePrediction};
pub use loss::cross_entropy;
pub use metrics::{
    EpochRecord, FinalRecord, IterationRecord, MemorySink, MetricsSink, NullSink, SinkError,
};
pub use optim::{Optimizer, OptimizerParams};
pub use sched::LrScheduler;
pub use trainer::{dropout_seed, DeferredStep, StepOutput, Trainer};
