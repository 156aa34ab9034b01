//! Evaluation of a network on a whole image set: mean cross-entropy, accuracy,
//! per-class accuracy, confusion matrix and every prediction, in eval mode
//! (BatchNorm running statistics, no dropout) without growing an autograd graph.
//!
//! Images are normalized exactly as `ablate_data`'s test loader does
//! (`to_unit`, then `Normalize::apply`), so a batch here equals a test batch there.

use ablate_data::augment::{to_unit, Normalize};
use ablate_data::ImageSet;
use candle_core::{bail, Device, Result, Tensor, D};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::loss::cross_entropy_per_row;
use crate::{Mode, Net};

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean cross-entropy per image (no label smoothing).
    pub loss: f64,
    /// Fraction of images whose arg-max logit is the label, in [0, 1].
    pub accuracy: f64,
    /// Accuracy over the images of each true class (0 for a class with no image).
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]`: image counts; `num_classes x num_classes`.
    pub confusion: Vec<Vec<u64>>,
    /// Predicted class of every image of the set, in set order.
    pub predictions: Vec<u32>,
}

impl EvalResult {
    /// Images of class `c` (the row sum of the confusion matrix).
    pub fn class_total(&self, c: usize) -> u64 {
        self.confusion.get(c).map(|r| r.iter().sum()).unwrap_or(0)
    }

    /// Correctly classified images of class `c`.
    pub fn class_correct(&self, c: usize) -> u64 {
        self.confusion
            .get(c)
            .and_then(|r| r.get(c))
            .copied()
            .unwrap_or(0)
    }
}

/// The device of a network's parameters.
pub(crate) fn net_device(net: &Net) -> Device {
    net.device().clone()
}

/// The normalized images `indices` of `set` as one `[n, C, H, W]` f32 tensor.
pub(crate) fn image_batch(
    set: &ImageSet,
    indices: &[usize],
    normalize: &Normalize,
    device: &Device,
) -> Result<Tensor> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let n = set.image_len();
    if let Some(&bad) = indices.iter().find(|&&i| i >= set.len) {
        bail!("image index {bad} out of range (the set holds {})", set.len);
    }
    let mut out = vec![0f32; indices.len() * n];
    out.par_chunks_mut(n).zip(indices.par_iter()).for_each_init(
        Vec::new,
        |unit: &mut Vec<f32>, (dst, &i)| {
            unit.resize(n, 0.0);
            to_unit(set.image(i), unit);
            normalize.apply(unit, dst, h * w);
        },
    );
    Tensor::from_vec(out, (indices.len(), c, h, w), device)
}

/// Evaluates `net` on every image of `set` in batches of `batch_size` (the
/// result does not depend on it).
///
/// The class count is the network's output width; labels at or beyond it are an
/// error.
pub fn evaluate(
    net: &Net,
    set: &ImageSet,
    normalize: &Normalize,
    batch_size: usize,
) -> Result<EvalResult> {
    if set.is_empty() {
        bail!("evaluate: the set holds no image");
    }
    let device = net_device(net);
    let batch_size = batch_size.max(1);
    let mut loss_sum = 0f64;
    let mut predictions = Vec::with_capacity(set.len);
    let mut confusion: Vec<Vec<u64>> = Vec::new();
    let mut idx = Vec::with_capacity(batch_size);
    for start in (0..set.len).step_by(batch_size) {
        let end = (start + batch_size).min(set.len);
        idx.clear();
        idx.extend(start..end);
        let x = image_batch(set, &idx, normalize, &device)?;
        let labels: Vec<u32> = set.labels[start..end]
            .iter()
            .map(|&l| u32::from(l))
            .collect();
        let logits = net.forward(&x, Mode::Eval)?.detach();
        let k = logits.dim(D::Minus1)?;
        if confusion.is_empty() {
            confusion = vec![vec![0u64; k]; k];
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= k) {
            bail!("evaluate: label {l} out of range for a network with {k} outputs");
        }
        let y = Tensor::from_slice(&labels, labels.len(), &device)?;
        let rows = cross_entropy_per_row(&logits, &y)?.to_vec1::<f32>()?;
        loss_sum += rows.iter().map(|&r| f64::from(r)).sum::<f64>();
        let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (&t, &p) in labels.iter().zip(&pred) {
            confusion[t as usize][p as usize] += 1;
        }
        predictions.extend_from_slice(&pred);
    }
    let n = set.len as f64;
    let correct: u64 = (0..confusion.len()).map(|c| confusion[c][c]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: u64 = row.iter().sum();
            if total == 0 {
                0.0
            } else {
                row[c] as f64 / total as f64
            }
        })
        .collect();
    Ok(EvalResult {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        per_class,
        confusion,
        predictions,
    })
}
