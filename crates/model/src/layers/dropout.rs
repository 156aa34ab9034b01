//! Dropout (Srivastava et al., 2014) with masks from a seeded generator of ours or from
//! PyTorch's.
//!
//! As `torch.nn.Dropout` in training mode: each element is kept with probability `1 - p` and
//! scaled by `1 / (1 - p)`. The mask's random numbers come from [`DropoutMasks`]: our
//! `ChaCha8Rng::seed_from_u64(seed)`, one draw per element in row-major order (the mask
//! depends only on the seed and the shape), or PyTorch's CPU generator as `F.dropout` draws
//! it on CPU (`bernoulli_(1 - p)`: two 32-bit draws per element, row-major; see
//! `ablate_data::torch_rng`).

use ablate_data::TorchGenerator;
use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where a training step's dropout masks come from.
#[derive(Clone, Copy, Debug, PartialEq)]
// `Torch` carries the generator's 2.5 KB state by value so that `Mode` stays `Copy`; a
// forward pass copies it a handful of times.
#[allow(clippy::large_enum_variant)]
pub enum DropoutMasks {
    /// No dropout (as PyTorch's golden files, made with p = 0).
    Off,
    /// `ChaCha8Rng::seed_from_u64(seed)`.
    Keyed(u64),
    /// PyTorch's generator in this state; the step that hands it over advances its own copy by
    /// [`torch_draws`] of the dropout input.
    Torch(TorchGenerator),
}

/// 32-bit draws PyTorch's `F.dropout(x, p, training=True)` takes from its generator on CPU for
/// `elements` values: none for `p = 0` or `p = 1`, else two per element.
pub fn torch_draws(elements: usize, p: f32) -> u64 {
    if p <= 0.0 || p >= 1.0 {
        0
    } else {
        2 * elements as u64
    }
}

/// Applies dropout with probability `p` and masks from `masks`; identity when `p == 0` or
/// `masks` is [`DropoutMasks::Off`].
///
/// # Shapes
/// x: any -> same.
pub fn dropout(x: &Tensor, p: f32, masks: DropoutMasks) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let n = x.elem_count();
    let mask: Vec<f32> = match masks {
        DropoutMasks::Off => return Ok(x.clone()),
        _ if p >= 1.0 => return x.zeros_like(),
        DropoutMasks::Keyed(seed) => {
            let keep = 1.0 - p;
            let scale = 1.0 / keep;
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect()
        }
        DropoutMasks::Torch(mut g) => {
            // `noise.bernoulli_(1 - p); noise.div_(1 - p); input * noise`, with PyTorch's
            // double `1 - p` for the draw and its float for the scale.
            let keep = 1.0 - f64::from(p);
            let scale = 1.0f32 / keep as f32;
            (0..n)
                .map(|_| if g.bernoulli(keep) { scale } else { 0.0 })
                .collect()
        }
    };
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mask_is_seeded_and_scaled() {
        let x = Tensor::ones((64, 512), candle_core::DType::F32, &Device::Cpu).unwrap();
        let a = dropout(&x, 0.5, DropoutMasks::Keyed(9))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = dropout(&x, 0.5, DropoutMasks::Keyed(9))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = dropout(&x, 0.5, DropoutMasks::Keyed(10))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = a.iter().filter(|&&v| v > 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.5).abs() < 0.02, "kept fraction {kept}");
        let same = dropout(&x, 0.0, DropoutMasks::Keyed(1)).unwrap();
        assert_eq!(
            same.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            64.0 * 512.0
        );
    }
}
