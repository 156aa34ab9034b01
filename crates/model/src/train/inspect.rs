//! "Looking inside" a trained network for the report: the mean excitation of
//! each channel-attention gate per class (the analysis of Hu et al.,
//! "Squeeze-and-Excitation Networks", CVPR 2018, section 7.2), and each block's
//! convolution output on a few images (the seed's feature-map figure).
//!
//! Both run eval-mode forwards through `Net::forward_inspect`, whose named
//! intermediates are `block{i}.conv` (`[B, C, H, W]`, before BatchNorm) and
//! `block{i}.gate` (`[B, C]`, channel gates).

use std::collections::BTreeMap;

use ablate_data::augment::Normalize;
use ablate_data::ImageSet;
use candle_core::{bail, Result, Tensor, D};
use serde::{Deserialize, Serialize};

use super::eval::{image_batch, net_device};
use crate::{Mode, Net};

/// Mean gate of one channel of one block over the images of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateStat {
    /// Block, 1-based.
    pub block: u32,
    /// True class of the images averaged over.
    pub class_index: u32,
    /// Channel index.
    pub channel: u32,
    /// Mean gate value.
    pub mean_gate: f64,
}

/// One channel of one block's convolution output on one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureMap {
    /// Position of the image in the `indices` given to [`feature_maps`].
    pub sample: u32,
    /// Block, 1-based.
    pub block: u32,
    /// Channel index.
    pub channel: u32,
    /// Map height.
    pub height: u32,
    /// Map width.
    pub width: u32,
    /// The values, row-major, `height * width`.
    pub values: Vec<f32>,
}

/// One inspected image and the network's prediction for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplePrediction {
    /// Position in the `indices` given to [`feature_maps`].
    pub sample: u32,
    /// Index of the image in the set.
    pub index: usize,
    /// True class.
    pub class_index: u32,
    /// Predicted class (arg-max logit).
    pub predicted: u32,
}

/// The result of [`feature_maps`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureMaps {
    /// The first channels of every block's conv output, for every sample.
    pub maps: Vec<FeatureMap>,
    /// Every sample's true and predicted class.
    pub samples: Vec<SamplePrediction>,
}

/// `block{i}.<suffix>` -> `i`.
fn block_of(name: &str, suffix: &str) -> Option<u32> {
    name.strip_prefix("block")?
        .strip_suffix(suffix)?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// Images per forward pass in [`class_gates`].
const GATE_BATCH: usize = 500;

/// Mean channel gate per (block, class, channel) over `set` (eval mode). Empty
/// for a network without channel gates; classes without images are left out.
/// Sorted by block, class, channel.
pub fn class_gates(
    net: &Net,
    set: &ImageSet,
    normalize: &Normalize,
    num_classes: usize,
) -> Result<Vec<GateStat>> {
    let device = net_device(net);
    // block -> [class][channel] sums
    let mut sums: BTreeMap<u32, Vec<Vec<f64>>> = BTreeMap::new();
    let mut counts = vec![0u64; num_classes];
    let mut idx = Vec::with_capacity(GATE_BATCH);
    for start in (0..set.len).step_by(GATE_BATCH) {
        let end = (start + GATE_BATCH).min(set.len);
        idx.clear();
        idx.extend(start..end);
        let labels = &set.labels[start..end];
        if let Some(&l) = labels.iter().find(|&&l| usize::from(l) >= num_classes) {
            bail!("class_gates: label {l} out of range for {num_classes} classes");
        }
        let x = image_batch(set, &idx, normalize, &device)?;
        let (_, inter) = net.forward_inspect(&x, Mode::Eval)?;
        for (name, t) in inter {
            let Some(block) = block_of(&name, "gate") else {
                continue;
            };
            if t.rank() != 2 {
                continue;
            }
            let g = t
                .detach()
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?;
            let c = g.first().map_or(0, Vec::len);
            let acc = sums
                .entry(block)
                .or_insert_with(|| vec![vec![0f64; c]; num_classes]);
            for (row, &l) in g.iter().zip(labels) {
                for (a, &v) in acc[usize::from(l)].iter_mut().zip(row) {
                    *a += f64::from(v);
                }
            }
        }
        for &l in labels {
            counts[usize::from(l)] += 1;
        }
    }
    let mut out = Vec::new();
    for (block, per_class) in sums {
        for (class, row) in per_class.iter().enumerate() {
            if counts[class] == 0 {
                continue;
            }
            for (channel, s) in row.iter().enumerate() {
                out.push(GateStat {
                    block,
                    class_index: class as u32,
                    channel: channel as u32,
                    mean_gate: s / counts[class] as f64,
                });
            }
        }
    }
    Ok(out)
}

/// The first `channels` channels of every block's convolution output (before
/// BatchNorm, eval mode) on the images `indices` of `set`, with the network's
/// predictions for them. Ordered by sample, block, channel.
pub fn feature_maps(
    net: &Net,
    set: &ImageSet,
    indices: &[usize],
    normalize: &Normalize,
    channels: usize,
) -> Result<FeatureMaps> {
    if indices.is_empty() {
        return Ok(FeatureMaps::default());
    }
    let device = net_device(net);
    let x = image_batch(set, indices, normalize, &device)?;
    let (logits, inter) = net.forward_inspect(&x, Mode::Eval)?;
    let predicted = logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
    let mut convs: Vec<(u32, Tensor)> = inter
        .into_iter()
        .filter_map(|(name, t)| block_of(&name, "conv").map(|b| (b, t)))
        .collect();
    convs.sort_by_key(|(b, _)| *b);
    let mut maps = Vec::new();
    for (sample, _) in indices.iter().enumerate() {
        for (block, t) in &convs {
            let (_, c, h, w) = t.dims4()?;
            let keep = channels.min(c);
            let img = t
                .get(sample)?
                .narrow(0, 0, keep)?
                .detach()
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (channel, values) in img.chunks_exact(h * w).enumerate() {
                maps.push(FeatureMap {
                    sample: sample as u32,
                    block: *block,
                    channel: channel as u32,
                    height: h as u32,
                    width: w as u32,
                    values: values.to_vec(),
                });
            }
        }
    }
    let samples = indices
        .iter()
        .zip(&predicted)
        .enumerate()
        .map(|(sample, (&index, &p))| SamplePrediction {
            sample: sample as u32,
            index,
            class_index: u32::from(set.labels[index]),
            predicted: p,
        })
        .collect();
    Ok(FeatureMaps { maps, samples })
}

#[cfg(test)]
mod tests {
    use super::block_of;

    #[test]
    fn block_names_parse() {
        assert_eq!(block_of("block1.gate", "gate"), Some(1));
        assert_eq!(block_of("block3.conv", "conv"), Some(3));
        assert_eq!(block_of("block2.spatial_gate", "gate"), None);
        assert_eq!(block_of("block2.conv", "gate"), None);
        assert_eq!(block_of("fc1", "gate"), None);
    }
}
