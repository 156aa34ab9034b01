//! PyTorch's default parameter initialization, drawn from our own seeded RNG.
//!
//! candle's CPU generator cannot be seeded (`../shared/notes/candle.md`), so every initial
//! weight comes from a [`ChaCha8Rng`] seeded with the model seed, on a stream chosen by a stable
//! hash (FNV-1a, 64 bit) of the parameter's name. A parameter's initial value therefore depends
//! only on (seed, name, shape): adding an attention module to a block does not change the
//! initial weights of the other layers, so variants of one seed start from the same backbone.
//!
//! Distributions, as `torch.nn` 2.x:
//! - `Conv1d`/`Conv2d`/`Linear` weight: `kaiming_uniform_(a = sqrt(5))`, i.e.
//!   `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = in_channels * prod(kernel)`;
//! - their bias: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`;
//! - `BatchNorm2d`: weight 1, bias 0, running mean 0, running variance 1.
//!
//! With `train.random_streams = "pytorch"` the same distributions are drawn instead from
//! PyTorch's own generator, in `state_dict` order ([`torch_init`], `Net::init_like_torch`),
//! so the initial weights equal `torch.manual_seed(seed); Model()`'s bit for bit.

use candle_core::{Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// FNV-1a 64-bit hash: stable across platforms and Rust versions (unlike `DefaultHasher`).
pub fn fnv1a64(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The generator for parameter `name` of a model seeded with `seed`.
pub fn param_rng(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a64(name));
    rng
}

/// PyTorch's bound for `kaiming_uniform_(a = sqrt(5))` and for the default bias: `1/sqrt(fan_in)`.
pub fn default_bound(fan_in: usize) -> f32 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f32).sqrt()
    }
}

/// A tensor of `shape` with elements drawn from `U(-bound, bound)` by `param_rng(seed, name)`.
pub fn uniform(
    seed: u64,
    name: &str,
    shape: impl Into<Shape>,
    bound: f32,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    let mut rng = param_rng(seed, name);
    let data: Vec<f32> = (0..shape.elem_count())
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
        .collect();
    Tensor::from_vec(data, shape, device)
}

/// How `torch.nn`'s default `reset_parameters` initializes one parameter of the equivalent
/// PyTorch module, given its name and the shapes of the module's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TorchInit {
    /// `uniform_(-bound, bound)`: one draw per element from the global generator.
    Uniform {
        /// The bound as PyTorch computes it (f64, cast to f32 by `uniform_`).
        bound: f64,
    },
    /// A constant (`BatchNorm2d`'s `ones_`/`zeros_`): no draw.
    Constant,
}

/// PyTorch's rule for parameter `name` of shape `shape`, whose module's weight has shape
/// `weight_shape`: a weight of rank 2 or more (`Conv1d`, `Conv2d`, `Linear`) gets
/// `kaiming_uniform_(a = sqrt(5))`, whose bound PyTorch computes as
/// `sqrt(3) * (sqrt(2 / (1 + a^2)) / sqrt(fan_in))`; the bias of such a module
/// `1 / sqrt(fan_in)`; anything else (BatchNorm) is constant.
pub fn torch_init(name: &str, shape: &[usize], weight_shape: Option<&[usize]>) -> TorchInit {
    let fan_in = |s: &[usize]| -> f64 { s[1..].iter().product::<usize>() as f64 };
    if name.ends_with(".weight") && shape.len() >= 2 {
        let a = 5f64.sqrt();
        let gain = (2.0 / (1.0 + a * a)).sqrt();
        let std = gain / fan_in(shape).sqrt();
        return TorchInit::Uniform {
            bound: 3f64.sqrt() * std,
        };
    }
    if name.ends_with(".bias") {
        if let Some(w) = weight_shape.filter(|w| w.len() >= 2) {
            let f = fan_in(w);
            return TorchInit::Uniform {
                bound: if f > 0.0 { 1.0 / f.sqrt() } else { 0.0 },
            };
        }
    }
    TorchInit::Constant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_published_vectors() {
        // FNV-1a 64 test vectors (Fowler/Noll/Vo reference): "" and "a"
        assert_eq!(fnv1a64(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn uniform_is_seeded_bounded_and_name_dependent() {
        let d = Device::Cpu;
        let a = uniform(3, "conv1.weight", (32, 3, 3, 3), 0.19, &d).unwrap();
        let b = uniform(3, "conv1.weight", (32, 3, 3, 3), 0.19, &d).unwrap();
        let c = uniform(3, "conv2.weight", (32, 3, 3, 3), 0.19, &d).unwrap();
        let e = uniform(4, "conv1.weight", (32, 3, 3, 3), 0.19, &d).unwrap();
        let av = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(av, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(av, c.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_ne!(av, e.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(av.iter().all(|v| v.abs() <= 0.19));
        // roughly uniform: mean near 0, variance near bound^2 / 3
        let n = av.len() as f32;
        let mean = av.iter().sum::<f32>() / n;
        let var = av.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 0.19f32.powi(2) / 3.0).abs() < 0.003, "{var}");
    }

    #[test]
    fn bound_is_pytorch_default() {
        // nn.Conv2d(3, 32, 3): fan_in 27 -> bound 1/sqrt(27) = 0.19245
        assert!((default_bound(27) - 0.192_450_1).abs() < 1e-6);
        assert!((default_bound(2048) - 0.022_097_087).abs() < 1e-8);
    }
}
