//! One epoch's training steps, from where the run stands to the epoch's last batch (or a stop
//! request, or a diverged loss), with each step's record handed to the sink.
//!
//! On the CPU each step is read back at once ([`Trainer::step`]): a non-finite loss is caught
//! before anything is trained on it, and the BatchNorm running statistics its forward changed
//! are put back. Off the CPU, and on the CPU with `Kernels::Generic` (which runs what a device
//! runs), the steps are queued without waiting ([`Trainer::step_deferred`]) and read back every
//! [`DEVICE_READBACK_STEPS`] steps, at a stop request and at the end of the epoch
//! ([`Pending`]): the host never waits for the device inside that window. A non-finite loss is
//! then found up to that many steps late; the run ends as diverged at that step all the same
//! (its later steps are not recorded; the weights are not restored).

use std::time::Instant;

use ablate_data::{Batch, Loader};
use candle_core::{Device, Tensor};

use super::metrics::{IterationRecord, MetricsSink};
use super::resume::RunState;
use super::trainer::{DeferredStep, StepOutput, Trainer};
use super::TrainError;
use crate::ops::kernels::Kernels;
use crate::Net;

/// Steps queued on a non-CPU device before their losses are read back.
pub const DEVICE_READBACK_STEPS: usize = 50;

/// How an epoch's steps ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EpochEnd {
    /// Every batch was trained on.
    Done,
    /// The loss of this step (0-based within the epoch) was not finite.
    Diverged {
        /// The step.
        step: u32,
    },
    /// The sink asked to stop; the position is consistent and can be saved.
    Interrupted,
}

/// What the epoch loop needs besides the trainer and the run's position.
pub(super) struct EpochInput<'a> {
    /// The training batches.
    pub(super) loader: &'a Loader,
    /// Batches per epoch (`max_steps_per_epoch` applied).
    pub(super) steps: usize,
    /// Image channels.
    pub(super) channels: usize,
}

/// Trains the rest of the epoch `run.epoch`.
pub(super) fn train_epoch(
    net: &mut Net,
    trainer: &mut Trainer,
    run: &mut RunState,
    input: &EpochInput<'_>,
    sink: &mut dyn MetricsSink,
) -> Result<EpochEnd, TrainError> {
    let device = net.device().clone();
    let deferred = !device.is_cpu() || net.kernels() == Kernels::Generic;
    let skip = run.progress.step as usize;
    let mut batches = input.loader.epoch_from(u64::from(run.epoch - 1), skip);
    let mut pending = Pending::default();
    let mut t0 = Instant::now();
    for _ in skip..input.steps {
        if sink.should_stop() {
            if let Some(step) = pending.read_back(run, sink, &mut t0)? {
                return Ok(EpochEnd::Diverged { step });
            }
            run.add_seconds(t0.elapsed().as_secs_f64());
            return Ok(EpochEnd::Interrupted);
        }
        let Some(batch) = batches.next() else {
            break;
        };
        let meta = StepMeta {
            epoch: run.epoch,
            step: run.progress.step + pending.len() as u32,
            iteration: trainer.iteration(),
            images: batch.size,
        };
        let (x, y) = upload(batch, input.channels, &device)?;
        if !deferred {
            // The forward updates BatchNorm's running statistics before the loss is known:
            // keep them to undo a diverged step.
            let bn_before = net.buffers();
            let out = trainer.step(net, &x, &y)?;
            if !record(run, &meta, &out, sink)? {
                restore_buffers(net, bn_before)?;
                return Ok(EpochEnd::Diverged { step: meta.step });
            }
            // Time is banked step by step so an interruption loses none.
            run.add_seconds(t0.elapsed().as_secs_f64());
            t0 = Instant::now();
        } else {
            pending.push(meta, trainer.step_deferred(net, &x, &y)?);
            if pending.len() >= DEVICE_READBACK_STEPS {
                if let Some(step) = pending.read_back(run, sink, &mut t0)? {
                    return Ok(EpochEnd::Diverged { step });
                }
            }
        }
    }
    match pending.read_back(run, sink, &mut t0)? {
        Some(step) => Ok(EpochEnd::Diverged { step }),
        None => Ok(EpochEnd::Done),
    }
}

/// A batch as tensors on `device`.
///
/// # Shapes
/// images `[B, C, H, W]` f32, labels `[B]` u32.
fn upload(batch: Batch, channels: usize, device: &Device) -> Result<(Tensor, Tensor), TrainError> {
    let n = batch.size;
    let x = Tensor::from_vec(
        batch.images,
        (n, channels, batch.height, batch.width),
        device,
    )?;
    let y = Tensor::from_vec(batch.labels, n, device)?;
    Ok((x, y))
}

/// Where a step sits in the run, known before its loss is.
#[derive(Clone, Copy, Debug)]
struct StepMeta {
    epoch: u32,
    step: u32,
    iteration: u64,
    images: usize,
}

/// Hands a step's record to the sink and, when its loss is finite, adds it to the epoch's
/// progress. Returns whether the loss was finite.
fn record(
    run: &mut RunState,
    meta: &StepMeta,
    out: &StepOutput,
    sink: &mut dyn MetricsSink,
) -> Result<bool, TrainError> {
    sink.iteration(&IterationRecord {
        epoch: meta.epoch,
        step: meta.step,
        iteration: meta.iteration,
        loss: out.loss,
    })
    .map_err(TrainError::Metrics)?;
    if !out.finite {
        return Ok(false);
    }
    let p = &mut run.progress;
    p.step += 1;
    p.loss_sum += f64::from(out.loss) * meta.images as f64;
    p.correct += out.correct as u64;
    p.seen += meta.images as u64;
    run.train_images += meta.images as u64;
    Ok(true)
}

/// Steps trained on a device whose results have not been read back yet.
#[derive(Debug, Default)]
struct Pending {
    steps: Vec<(StepMeta, DeferredStep)>,
}

impl Pending {
    fn len(&self) -> usize {
        self.steps.len()
    }

    fn push(&mut self, meta: StepMeta, step: DeferredStep) {
        self.steps.push((meta, step));
    }

    /// Reads every pending step back (in order), records it, and banks the time since `t0`
    /// (the device has finished them). Returns the first step whose loss was not finite.
    fn read_back(
        &mut self,
        run: &mut RunState,
        sink: &mut dyn MetricsSink,
        t0: &mut Instant,
    ) -> Result<Option<u32>, TrainError> {
        let steps = std::mem::take(&mut self.steps);
        let mut diverged = None;
        for (meta, step) in &steps {
            let out = step.read()?;
            if !record(run, meta, &out, sink)? {
                diverged = Some(meta.step);
                break;
            }
        }
        run.add_seconds(t0.elapsed().as_secs_f64());
        *t0 = Instant::now();
        Ok(diverged)
    }
}

/// Puts back BatchNorm running statistics saved by `Net::buffers`.
fn restore_buffers(net: &mut Net, buffers: Vec<(String, Tensor)>) -> Result<(), TrainError> {
    let mut sd: std::collections::HashMap<String, Tensor> = net.state_dict()?.into_iter().collect();
    sd.extend(buffers);
    net.load_state_dict(&sd)
        .map_err(|e| TrainError::Weights(Box::new(e)))?;
    Ok(())
}
