//! What a training run reports: one record per step ([`IterationRecord`]), per epoch
//! ([`EpochRecord`]) and at the end ([`FinalRecord`]), delivered to a [`MetricsSink`] that the
//! caller chooses (the runner writes files; tests keep them in memory).

use serde::{Deserialize, Serialize};

use super::eval::EvalResult;

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

/// Why a sink could not take a record (a full disk, a closed pipe, ...), with its cause.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where a run's metrics go; the runner decides (files, a progress bar, ...).
///
/// On a resumed run only the new steps and epochs are reported. A sink that fails ends the
/// run with [`super::TrainError::Metrics`]: no record is silently lost.
pub trait MetricsSink {
    /// After every step (also the one whose loss is not finite). Off the CPU the records of a
    /// few steps arrive together, when the trainer reads the losses back from the device.
    fn iteration(&mut self, r: &IterationRecord) -> Result<(), SinkError>;
    /// After every epoch's evaluation.
    fn epoch(&mut self, r: &EpochRecord) -> Result<(), SinkError>;
    /// Once, when all epochs are done (not for a diverged or interrupted run).
    fn finished(&mut self, r: &FinalRecord) -> Result<(), SinkError>;
    /// Polled between steps: `true` checkpoints and ends the run as
    /// [`super::TrainOutcome::Interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// A sink that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl MetricsSink for NullSink {
    fn iteration(&mut self, _: &IterationRecord) -> Result<(), SinkError> {
        Ok(())
    }
    fn epoch(&mut self, _: &EpochRecord) -> Result<(), SinkError> {
        Ok(())
    }
    fn finished(&mut self, _: &FinalRecord) -> Result<(), SinkError> {
        Ok(())
    }
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
    fn iteration(&mut self, r: &IterationRecord) -> Result<(), SinkError> {
        self.iterations.push(r.clone());
        Ok(())
    }
    fn epoch(&mut self, r: &EpochRecord) -> Result<(), SinkError> {
        self.epochs.push(r.clone());
        Ok(())
    }
    fn finished(&mut self, r: &FinalRecord) -> Result<(), SinkError> {
        self.finished = Some(r.clone());
        Ok(())
    }
}
