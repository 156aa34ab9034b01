//! The trainer: the `[train]` table ([`TrainConfig`]), PyTorch-exact optimizers
//! ([`Optimizer`]: Adam, SGD) and learning-rate schedules ([`LrScheduler`]),
//! cross-entropy with label smoothing ([`cross_entropy`]), the training loop
//! ([`fit`], [`Trainer`]) with its metrics ([`MetricsSink`]) and checkpoints
//! ([`checkpoint`]), evaluation ([`evaluate`]) and the "looking inside" helpers
//! ([`class_gates`], [`feature_maps`]).
//!
//! `docs/training.md` documents the keys and the semantics.

pub mod checkpoint;
mod checkpoint_files;
pub mod config;
pub mod eval;
pub mod fit;
pub mod inspect;
pub mod loss;
pub mod optim;
pub mod sched;

pub use checkpoint::{CheckpointError, CheckpointState};
pub use config::{OptimizerKind, SchedulerKind, TrainConfig, TrainConfigError};
pub use eval::{evaluate, EvalResult};
pub use fit::{
    dropout_seed, fit, EpochRecord, FinalRecord, IterationRecord, MemorySink, MetricsSink,
    NullSink, StepOutput, TrainError, TrainOutcome, Trainer,
};
pub use inspect::{class_gates, feature_maps, FeatureMap, FeatureMaps, GateStat, SamplePrediction};
pub use loss::cross_entropy;
pub use optim::{Optimizer, OptimizerParams};
pub use sched::LrScheduler;
