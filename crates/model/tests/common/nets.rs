//! Helpers of the whole-network tests (`models.rs`, `models_resnet.rs`): input batches, a
//! tensor's values, and the directional finite-difference check of a gradient.

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A batch of `b` CIFAR-shaped images (`[b, 3, 32, 32]`), uniform in `[-2, 2)`, from `seed`.
pub fn input(b: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..b * 3 * 32 * 32)
        .map(|_| rng.random::<f32>() * 4.0 - 2.0)
        .collect();
    Tensor::from_vec(v, (b, 3, 32, 32), &Device::Cpu).unwrap()
}

/// A tensor's values, flattened.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// The derivative of `loss` along the direction `d` (unit norm) of the parameter `var`:
/// analytic, `g . d` from the gradient values `g`, and numeric, by central differences
/// `(L(p + h d) - L(p - h d)) / 2h`. `var` is restored. Returns `(analytic, numeric)`.
pub fn directional_derivative(
    var: &Var,
    g: &[f32],
    d: &[f32],
    h: f64,
    loss: impl Fn() -> f64,
) -> (f64, f64) {
    let analytic: f64 = g
        .iter()
        .zip(d)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let p0 = var.as_tensor().copy().unwrap();
    let dt = Tensor::from_vec(d.to_vec(), p0.shape(), p0.device()).unwrap();
    var.set(&(&p0 + (&dt * h).unwrap()).unwrap()).unwrap();
    let lp = loss();
    var.set(&(&p0 - (&dt * h).unwrap()).unwrap()).unwrap();
    let lm = loss();
    var.set(&p0).unwrap();
    (analytic, (lp - lm) / (2.0 * h))
}
