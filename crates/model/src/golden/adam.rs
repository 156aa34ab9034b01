//! Three Adam steps of [`Trainer::step`] from a fixture's initial state against PyTorch's
//! (`adam.*` in the repo's fixtures): each step's loss to [`LOSS_TOLERANCE`], each parameter's
//! update norm and sum to [`UPDATE_TOLERANCE`], the running statistics to
//! [`RUNNING_TOLERANCE`] of their scale.
//!
//! The fixtures use lr 1e-4 (in their metadata) rather than the default 1e-3: on two images the
//! loss would fall to about 0.01 by the third step, where float32 PyTorch itself is up to 4e-5
//! from float64, and the check would measure rounding, not the optimizer.

use candle_core::Tensor;

use super::reference::f64s;
use super::step::{conv_bias_is_noise, rel_err};
use super::{Comparison, Fixture, GoldenError};
use crate::ops::kernels::Kernels;
use crate::train::{TrainConfig, Trainer};
use crate::Net;

/// Relative error accepted on each step's loss.
pub const LOSS_TOLERANCE: f64 = 1e-5;
/// Relative error accepted on a parameter's total update (norm and sum).
pub const UPDATE_TOLERANCE: f64 = 0.02;
/// Error accepted on the running statistics, relative to their scale.
pub const RUNNING_TOLERANCE: f64 = 1e-4;

fn values(net: &Net) -> candle_core::Result<Vec<Vec<f64>>> {
    net.trainable()
        .iter()
        .map(|(_, v)| f64s(v.as_tensor()))
        .collect()
}

/// Whether parameter `name` is a conv bias whose reference gradient is rounding noise (false for
/// a bias the model does not have: a ResNet's convolutions have none).
fn noise_bias(fx: &Fixture, name: &str) -> Result<bool, GoldenError> {
    if !fx.reference.has(&format!("grad.{name}")) {
        return Ok(false);
    }
    match name
        .strip_suffix(".bias")
        .filter(|layer| layer.starts_with("conv"))
    {
        Some(layer) => conv_bias_is_noise(&fx.reference, layer),
        None => Ok(false),
    }
}

/// The three steps from `fx`'s initial state with `kernels` on `device`.
pub fn compare_adam(
    fx: &Fixture,
    kernels: Kernels,
    device: &candle_core::Device,
) -> Result<Vec<Comparison>, GoldenError> {
    let model = |e: Box<dyn std::error::Error + Send + Sync>| GoldenError::Model {
        file: fx.reference.label.clone(),
        source: e,
    };
    let case = fx.build(kernels, device)?;
    let net = &case.net;
    let p0 = values(net).map_err(|e| model(Box::new(e)))?;
    let lr = fx.adam_lr;
    let cfg = TrainConfig {
        lr,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(net, &cfg, 0).map_err(|e| model(Box::new(e)))?;
    let mut out = Vec::new();
    let want_losses = fx.reference.f64s("adam.loss")?;
    for (i, want) in want_losses.iter().enumerate() {
        let step = trainer
            .step(net, &case.input, &case.target)
            .map_err(|e| model(Box::new(e)))?;
        let rel = (f64::from(step.loss) - want).abs() / want.abs();
        out.push(Comparison::within(
            format!("adam step {} loss", i + 1),
            rel,
            LOSS_TOLERANCE,
            Some(format!("{} (PyTorch {want})", step.loss)),
        ));
    }
    let bound = want_losses.len() as f64 * lr;
    let after = values(net).map_err(|e| model(Box::new(e)))?;
    let names: Vec<String> = net.trainable().into_iter().map(|(n, _)| n).collect();
    for ((name, before), after) in names.iter().zip(&p0).zip(&after) {
        out.push(update(fx, name, before, after, bound)?);
    }
    for (name, t) in net.buffers() {
        out.push(running(fx, &name, &t, bound)?);
    }
    Ok(out)
}

/// A parameter's total update against PyTorch's norm and sum. `bound` is the largest total
/// update of one element (`steps x lr`).
fn update(
    fx: &Fixture,
    name: &str,
    before: &[f64],
    after: &[f64],
    bound: f64,
) -> Result<Comparison, GoldenError> {
    let d: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
    let sum: f64 = d.iter().sum();
    let key = format!("adam update {name}");
    // A gradient of pure rounding noise (a conv bias before a train-mode BatchNorm) is turned
    // by Adam into updates of about +-lr per step in arbitrary directions, in PyTorch as in
    // ours: only the size of the update means something.
    if noise_bias(fx, name)? {
        let most = bound * (d.len() as f64).sqrt() * 1.01;
        return Ok(Comparison::within(
            key,
            norm,
            most,
            Some("the update's norm (noise gradient: only its size means something)".into()),
        ));
    }
    let want = fx.reference.f64s(&format!("adam.delta.{name}"))?;
    let (wn, ws) = (
        want.first().copied().unwrap_or(0.0),
        want.get(1).copied().unwrap_or(0.0),
    );
    let error = ((norm - wn).abs() / wn).max((sum - ws).abs() / (ws.abs() + wn));
    Ok(Comparison::within(
        key,
        error,
        UPDATE_TOLERANCE,
        Some(format!(
            "norm {norm:.6e} (PyTorch {wn:.6e}), sum {sum:.6e} (PyTorch {ws:.6e})"
        )),
    ))
}

/// A running statistic after the steps. `bound` is the largest total update of one parameter
/// element (`steps x lr`).
fn running(fx: &Fixture, name: &str, t: &Tensor, bound: f64) -> Result<Comparison, GoldenError> {
    let want = fx.reference.f64s(&format!("adam.{name}"))?;
    // Running means include the conv biases, whose updates are noise where their gradient is
    // (above): momentum 0.1 times at most 2 x `bound` of bias difference per channel.
    let bias = name.replace("bn", "conv").replace("running_mean", "bias");
    let slack = if name.ends_with("running_mean") && noise_bias(fx, &bias)? {
        0.1 * 2.0 * bound
    } else {
        0.0
    };
    let scale = want.iter().map(|x| x.abs()).fold(0.0, f64::max);
    let ours = f64s(t).map_err(|e| GoldenError::Model {
        file: fx.reference.label.clone(),
        source: Box::new(e),
    })?;
    let err = rel_err(&ours, &want, 0.0);
    let tolerance = if scale > 0.0 {
        RUNNING_TOLERANCE + slack / scale
    } else {
        RUNNING_TOLERANCE + slack
    };
    Ok(Comparison::within(
        format!("adam.{name}"),
        err,
        tolerance,
        (slack > 0.0).then(|| format!("with a slack of {slack:.0e} for the noise biases")),
    ))
}
