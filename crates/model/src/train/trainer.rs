//! One training step and the state that carries from step to step: the optimizer, the
//! learning-rate schedule, the step counter and the dropout masks' random stream
//! ([`Trainer`]). [`super::fit`](fn@super::fit) drives it over epochs; benchmarks and custom loops call
//! [`Trainer::step`] directly.
//!
//! On the CPU a step reads its loss back at once and skips the update of a non-finite loss.
//! Off the CPU, [`Trainer::step_deferred`] leaves the loss and the count of correct predictions
//! on the device, so the host queues the next step's kernels without waiting for this one;
//! the caller reads them back in groups ([`DeferredStep::read`]).

use ablate_data::{RandomStreams, TorchGenerator};
use candle_core::{DType, Tensor, D};

use super::config::TrainConfig;
use super::loss::cross_entropy;
use super::optim::{Optimizer, OptimizerParams};
use super::sched::LrScheduler;
use super::TrainError;
use crate::layers::DropoutMasks;
use crate::ops::kernels::Kernels;
use crate::{Mode, Net};

/// What one training step produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutput {
    /// The batch's mean loss.
    pub loss: f32,
    /// Images of the batch whose arg-max logit is the label.
    pub correct: usize,
    /// Whether the loss was finite (if not, [`Trainer::step`] made no update).
    pub finite: bool,
}

/// A step whose loss and correct count are still on the device.
#[derive(Debug)]
pub struct DeferredStep {
    /// The batch's mean loss, a scalar tensor.
    loss: Tensor,
    /// The number of correct predictions, a u32 scalar tensor.
    correct: Tensor,
}

impl DeferredStep {
    /// Reads the step's results back to the host (waits for the device).
    pub fn read(&self) -> Result<StepOutput, TrainError> {
        let loss = self.loss.to_scalar::<f32>()?;
        let correct = self.correct.to_scalar::<u32>()? as usize;
        Ok(StepOutput {
            loss,
            correct,
            finite: loss.is_finite(),
        })
    }
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

/// The optimizer, schedule and counters of a run; [`super::fit`](fn@super::fit) drives it, and
/// [`Trainer::step`] is one training step on its own (benchmarks, custom loops).
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    seed: u64,
    pub(super) optimizer: Optimizer,
    pub(super) scheduler: LrScheduler,
    pub(super) iteration: u64,
    /// With PyTorch's streams: its global generator, where the next step's masks start.
    pub(super) torch: Option<TorchGenerator>,
}

impl Trainer {
    /// A trainer for `net`'s trainable parameters, at iteration 0. With
    /// `random_streams = "pytorch"` the dropout masks continue PyTorch's generator after the
    /// draws of [`Net::init_like_torch`] (which [`super::fit`](fn@super::fit) calls on a fresh start).
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
    /// non-finite loss skips backward and update and returns `finite: false`. Reads the loss
    /// back before deciding, so the host waits for the device at every step.
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
        let pending = self.forward(net, images, labels)?;
        let out = pending.read()?;
        if out.finite {
            self.update(&pending.loss)?;
        }
        Ok(out)
    }

    /// [`Trainer::step`] without reading anything back: the update is made whatever the loss
    /// (a non-finite loss poisons the weights; the caller learns it when it reads the step and
    /// ends the run as diverged).
    ///
    /// # Shapes
    /// As [`Trainer::step`].
    pub fn step_deferred(
        &mut self,
        net: &Net,
        images: &Tensor,
        labels: &Tensor,
    ) -> Result<DeferredStep, TrainError> {
        let pending = self.forward(net, images, labels)?;
        self.update(&pending.loss)?;
        Ok(pending)
    }

    /// The train-mode forward and loss of the next step (the step counter advances).
    fn forward(
        &mut self,
        net: &Net,
        images: &Tensor,
        labels: &Tensor,
    ) -> Result<DeferredStep, TrainError> {
        let dropout = match &mut self.torch {
            Some(g) => {
                let masks = DropoutMasks::Torch(*g);
                g.discard(net.torch_dropout_draws(images.dim(0)?));
                masks
            }
            None => DropoutMasks::Keyed(dropout_seed(self.seed, self.iteration)),
        };
        self.iteration += 1;
        let logits = net.forward(images, Mode::Train { dropout })?;
        let loss = cross_entropy(&logits, labels, self.cfg.label_smoothing)?;
        let correct = logits
            .detach()
            .argmax(D::Minus1)?
            .eq(labels)?
            .to_dtype(DType::U32)?
            .sum_all()?;
        Ok(DeferredStep { loss, correct })
    }

    /// Backward from `loss` and one optimizer update.
    fn update(&mut self, loss: &Tensor) -> Result<(), TrainError> {
        let grads = loss.backward()?;
        self.optimizer.step(&grads)?;
        Ok(())
    }
}
