//! Dropout (Srivastava et al., 2014) with masks from our own seeded generator.
//!
//! As `torch.nn.Dropout` in training mode: each element is kept with probability `1 - p` and
//! scaled by `1 / (1 - p)`. The mask comes from `ChaCha8Rng::seed_from_u64(seed)`, one draw per
//! element in row-major order, so it depends only on the seed and the shape.

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Applies dropout with probability `p` and mask seed `seed`; identity when `p == 0`.
///
/// # Shapes
/// x: any -> same.
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.zeros_like();
    }
    let keep = 1.0 - p;
    let scale = 1.0 / keep;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f32>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
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
        let a = dropout(&x, 0.5, 9)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = dropout(&x, 0.5, 9)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = dropout(&x, 0.5, 10)
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
        let same = dropout(&x, 0.0, 1).unwrap();
        assert_eq!(
            same.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            64.0 * 512.0
        );
    }
}
