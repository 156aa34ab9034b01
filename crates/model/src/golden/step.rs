//! One forward and backward against the reference: eval-mode logits, train-mode logits and
//! loss (dropout off), the loss's gradient for every parameter, and the BatchNorm running
//! statistics after that train-mode forward.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::reference::{f64s, Reference};
use super::{Case, Comparison, GoldenError, TOLERANCE};
use crate::{DropoutMasks, Mode};

/// `max|ours - reference| / max(max|reference|, floor)`, or `max|ours - reference|` when that
/// scale is 0; infinite when `ours` has a non-finite value or the lengths differ.
pub fn rel_err(ours: &[f64], reference: &[f64], floor: f64) -> f64 {
    if ours.len() != reference.len() || ours.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let diff = ours
        .iter()
        .zip(reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = reference.iter().map(|y| y.abs()).fold(floor, f64::max);
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().map(|x| x.abs()).fold(0.0, f64::max)
}

/// Our values and the reference's, element for element.
type Pair = (Vec<f64>, Vec<f64>);

/// The reference gradient of parameter `name`: `exact.grad.<name>` (PyTorch's float64
/// gradient, stored where its float32 one is itself more than 1e-5 of its scale off) or
/// `grad.<name>`, only the output channels in `rows.<name>` when that key exists, or the product of `product.<layer>.grad_output` and
/// `product.<layer>.input` formed in f64, paired with ours restricted alike.
fn gradient_pair(reference: &Reference, name: &str, ours: &Tensor) -> Result<Pair, GoldenError> {
    let model = |e: candle_core::Error| GoldenError::Model {
        file: reference.label.clone(),
        source: Box::new(e),
    };
    let layer = name.strip_suffix(".weight").unwrap_or(name);
    let product = format!("product.{layer}.input");
    if name.ends_with(".weight") && reference.has(&product) {
        let x = reference.get(&product)?;
        let (b, inputs) = x.dims2().map_err(model)?;
        let x = f64s(x).map_err(model)?;
        let gout = reference.f64s(&format!("product.{layer}.grad_output"))?;
        let outputs = gout.len() / b.max(1);
        let mut want = vec![0f64; outputs * inputs];
        for s in 0..b {
            for j in 0..outputs {
                let gj = gout[s * outputs + j];
                let row = &mut want[j * inputs..(j + 1) * inputs];
                for (w, xk) in row.iter_mut().zip(&x[s * inputs..(s + 1) * inputs]) {
                    *w += gj * xk;
                }
            }
        }
        return Ok((f64s(ours).map_err(model)?, want));
    }
    let exact = format!("exact.grad.{name}");
    let want = if reference.has(&exact) {
        reference.f64s(&exact)?
    } else {
        reference.f64s(&format!("grad.{name}"))?
    };
    let rows_key = format!("rows.{name}");
    if reference.has(&rows_key) {
        let rows = reference
            .get(&rows_key)?
            .to_dtype(DType::U32)
            .and_then(|r| r.to_device(ours.device()))
            .map_err(model)?;
        let picked = ours.index_select(&rows, 0).map_err(model)?;
        return Ok((f64s(&picked).map_err(model)?, want));
    }
    Ok((f64s(ours).map_err(model)?, want))
}

/// Whether conv layer `layer`'s bias gradient is rounding noise in `reference`: before a
/// train-mode BatchNorm its true value is 0 (BatchNorm subtracts the batch mean), and both
/// frameworks give values about 1e-8 of the weight gradient's.
pub fn conv_bias_is_noise(reference: &Reference, layer: &str) -> Result<bool, GoldenError> {
    let bias = max_abs(&reference.f64s(&format!("grad.{layer}.bias"))?);
    let weight = max_abs(&reference.f64s(&format!("grad.{layer}.weight"))?);
    Ok(bias <= 1e-4 * weight)
}

/// Eval-mode logits, train-mode logits and loss (dropout off), the loss's gradient for every
/// parameter and the running statistics after that train-mode forward, each against
/// `reference`, in that order.
///
/// A bias's gradient is measured against the larger of its own scale and the scale of its
/// module's weight gradient. It is a sum over the batch and the positions of the output
/// gradient whose terms largely cancel (before a train-mode BatchNorm exactly: its true value is
/// 0 and both frameworks give rounding noise of about 1e-8 of the weight gradient), so its
/// rounding error follows the size of the terms, which the weight gradient shows, not the size
/// of the sum: PyTorch's own float32 result for `ca1.fc.0.bias` of `se_post_conv` is 1.7e-4 of
/// its value away from the exact (float64) one.
pub fn compare_step(reference: &Reference, case: &Case) -> Result<Vec<Comparison>, GoldenError> {
    let Case { net, input, target } = case;
    let model = |e: candle_core::Error| GoldenError::Model {
        file: reference.label.clone(),
        source: Box::new(e),
    };
    let whole = |key: &str, ours: &Tensor| -> Result<Comparison, GoldenError> {
        let ours = f64s(ours).map_err(model)?;
        Ok(Comparison::relative(
            key,
            rel_err(&ours, &reference.f64s(key)?, 0.0),
        ))
    };
    let mut out = vec![whole(
        "eval.logits",
        &net.forward(input, Mode::Eval).map_err(model)?,
    )?];
    let mode = Mode::Train {
        dropout: DropoutMasks::Off,
    };
    let logits = net.forward(input, mode).map_err(model)?;
    out.push(whole("train.logits", &logits)?);
    let loss = crate::train::cross_entropy(&logits, target, 0.0).map_err(model)?;
    out.push(whole("train.loss", &loss.reshape(1).map_err(model)?)?);

    let grads = loss.backward().map_err(model)?;
    let mut pairs: Vec<(String, Pair)> = Vec::new();
    for (name, var) in net.trainable() {
        let g = grads.get(&var).ok_or_else(|| GoldenError::Format {
            file: reference.label.clone(),
            what: format!("the model computed no gradient for `{name}`"),
        })?;
        pairs.push((name.clone(), gradient_pair(reference, &name, g)?));
    }
    let scales: HashMap<&str, f64> = pairs
        .iter()
        .map(|(name, (_, want))| (name.as_str(), max_abs(want)))
        .collect();
    for (name, (ours, want)) in &pairs {
        let floor = name
            .strip_suffix(".bias")
            .and_then(|module| scales.get(format!("{module}.weight").as_str()))
            .copied()
            .unwrap_or(0.0);
        let error = rel_err(ours, want, floor);
        out.push(if reference.has(&format!("exact.grad.{name}")) {
            let detail = Some("(against float64)".to_string());
            Comparison::within(format!("grad.{name}"), error, TOLERANCE, detail)
        } else {
            Comparison::relative(format!("grad.{name}"), error)
        });
    }
    for (name, t) in net.buffers() {
        out.push(whole(&format!("after_train_step.{name}"), &t)?);
    }
    Ok(out)
}
