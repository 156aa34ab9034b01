//! Training and inference throughput of a model on a device, measured as PyTorch's reference
//! script measures its own (`torch_seed.py bench`): random inputs, a few warm-up steps, then
//! timed steps, with the device drained before the clock stops.
//!
//! A training step is what the trainer runs ([`Trainer::step_deferred`]: train-mode forward
//! with dropout, cross-entropy, backward, Adam at lr 1e-3); inference is an eval-mode forward.
//! Off the CPU nothing is read back inside the timed loop, as in training; the last step's
//! result is read at the end, which waits for everything queued before it.

use std::time::Instant;

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ops::kernels::Kernels;
use crate::train::{TrainConfig, Trainer};
use crate::{Mode, ModelSpec, Net};

/// How long to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// Images per step.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before (allocator, caches, kernel compilation).
    pub warmup: usize,
    /// What to measure.
    pub phase: Phase,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            batch: 64,
            steps: 30,
            warmup: 5,
            phase: Phase::Both,
        }
    }
}

/// Which of the two measurements [`throughput`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Training steps, then inference.
    Both,
    /// Training steps only.
    Train,
    /// Inference only (no training step runs: the model keeps its initial weights).
    Infer,
}

impl Phase {
    fn train(self) -> bool {
        self != Phase::Infer
    }

    fn infer(self) -> bool {
        self != Phase::Train
    }
}

/// What [`throughput`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throughput {
    /// Trainable parameters of the model.
    pub params: u64,
    /// Training images per second, if [`BenchConfig::phase`] measured them.
    pub train_img_s: Option<f64>,
    /// Inference images per second, if [`BenchConfig::phase`] measured them.
    pub infer_img_s: Option<f64>,
}

/// Measures `spec` (10 classes, 3x32x32 inputs) on `device` with `kernels`.
pub fn throughput(
    spec: &ModelSpec,
    device: &Device,
    kernels: Kernels,
    cfg: &BenchConfig,
) -> std::result::Result<Throughput, crate::train::TrainError> {
    if cfg.batch == 0 || cfg.steps == 0 {
        return Err(
            candle_core::Error::Msg("bench: batch and steps must be at least 1".into()).into(),
        );
    }
    let (x, y) = random_batch(cfg.batch, device)?;
    let mut net = Net::new(spec, 10, device, 0)?;
    net.set_kernels(kernels);
    let images = (cfg.batch * cfg.steps) as f64;
    let train = match cfg.phase.train() {
        true => Some(images / train_seconds(&net, &x, &y, cfg)?),
        false => None,
    };
    let infer = match cfg.phase.infer() {
        true => Some(images / infer_seconds(&net, &x, cfg)?),
        false => None,
    };
    Ok(Throughput {
        params: net.param_count(),
        train_img_s: train,
        infer_img_s: infer,
    })
}

/// Seconds of `cfg.steps` training steps after `cfg.warmup` untimed ones.
fn train_seconds(
    net: &Net,
    x: &Tensor,
    y: &Tensor,
    cfg: &BenchConfig,
) -> std::result::Result<f64, crate::train::TrainError> {
    let mut trainer = Trainer::new(net, &TrainConfig::default(), 0)?;
    for _ in 0..cfg.warmup {
        trainer.step_deferred(net, x, y)?;
    }
    if cfg.warmup > 0 {
        trainer.step(net, x, y)?; // drains the warm-up
    }
    let t0 = Instant::now();
    let mut last = None;
    for _ in 0..cfg.steps {
        last = Some(trainer.step_deferred(net, x, y)?);
    }
    if let Some(last) = last {
        last.read()?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Seconds of `cfg.steps` evaluation forwards after `cfg.warmup` untimed ones.
fn infer_seconds(net: &Net, x: &Tensor, cfg: &BenchConfig) -> Result<f64> {
    for _ in 0..cfg.warmup {
        drain(&net.forward(x, Mode::Eval)?)?;
    }
    let t0 = Instant::now();
    let mut out = None;
    for _ in 0..cfg.steps {
        out = Some(net.forward(x, Mode::Eval)?);
    }
    if let Some(out) = out {
        drain(&out)?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// Seeded random images and labels on `device`.
///
/// # Shapes
/// images `[batch, 3, 32, 32]` f32 in [-1, 1), labels `[batch]` u32 in 0..10.
fn random_batch(batch: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = batch * 3 * 32 * 32;
    let x: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    Ok((
        Tensor::from_vec(x, (batch, 3, 32, 32), device)?,
        Tensor::from_vec(y, batch, device)?,
    ))
}

/// Waits until `t` is computed (reads one value of it back).
fn drain(t: &Tensor) -> Result<()> {
    t.sum_all()?.to_scalar::<f32>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_kernel_choice_on_the_cpu() {
        let cfg = BenchConfig {
            batch: 4,
            steps: 2,
            warmup: 1,
            phase: Phase::Both,
        };
        for kernels in Kernels::ALL {
            let t = throughput(&ModelSpec::default(), &Device::Cpu, kernels, &cfg).unwrap();
            let positive = |v: Option<f64>| v.is_some_and(|v| v > 0.0);
            assert!(
                positive(t.train_img_s) && positive(t.infer_img_s),
                "{kernels:?}"
            );
            assert_eq!(
                t.params,
                Net::new(&ModelSpec::default(), 10, &Device::Cpu, 0)
                    .unwrap()
                    .param_count()
            );
        }
        let bad = BenchConfig { batch: 0, ..cfg };
        assert!(throughput(&ModelSpec::default(), &Device::Cpu, Kernels::Fast, &bad).is_err());
    }

    #[test]
    fn measures_one_phase_alone() {
        let run = |phase| {
            let cfg = BenchConfig {
                batch: 2,
                steps: 1,
                warmup: 0,
                phase,
            };
            throughput(&ModelSpec::default(), &Device::Cpu, Kernels::Fast, &cfg).unwrap()
        };
        let t = run(Phase::Train);
        assert!(t.train_img_s.is_some_and(|v| v > 0.0) && t.infer_img_s.is_none());
        let t = run(Phase::Infer);
        assert!(t.train_img_s.is_none() && t.infer_img_s.is_some_and(|v| v > 0.0));
    }
}
