//! Fully connected layer (`torch.nn.Linear`).

use candle_core::{Device, Result, Tensor};

use super::{Mode, Param};
use crate::init;
use crate::ops::kernels::Kernels;

/// Configuration of a [`Linear`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearConfig {
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// Whether there is a bias.
    pub bias: bool,
}

impl LinearConfig {
    /// Multiply-accumulates per input row (bias additions not counted).
    pub fn macs(&self) -> u64 {
        (self.in_features * self.out_features) as u64
    }
}

/// `torch.nn.Linear` with PyTorch's default init; parameters `{prefix}.weight`
/// `[out, in]` and `{prefix}.bias` `[out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// The configuration.
    pub config: LinearConfig,
    /// `[out, in]`.
    pub weight: Param,
    /// `[out]`, when `config.bias`.
    pub bias: Option<Param>,
    /// Fast CPU kernel (`crate::ops::linear`) or plain candle ops; [`Kernels::Fast`] by default.
    pub kernels: Kernels,
}

impl Linear {
    /// A freshly initialized layer named `prefix`.
    pub fn new(config: LinearConfig, prefix: &str, seed: u64, device: &Device) -> Result<Linear> {
        let bound = init::default_bound(config.in_features);
        let wname = format!("{prefix}.weight");
        let shape = (config.out_features, config.in_features);
        let weight = Param::new(&wname, init::uniform(seed, &wname, shape, bound, device)?)?;
        let bias = if config.bias {
            let bname = format!("{prefix}.bias");
            let b = init::uniform(seed, &bname, config.out_features, bound, device)?;
            Some(Param::new(bname, b)?)
        } else {
            None
        };
        Ok(Linear {
            config,
            weight,
            bias,
            kernels: Kernels::default(),
        })
    }

    /// The parameters in `state_dict` order.
    pub fn params(&self) -> Vec<&Param> {
        std::iter::once(&self.weight)
            .chain(self.bias.as_ref())
            .collect()
    }

    /// # Shapes
    /// x: `[N, in]` -> `[N, out]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let bias = self.bias.as_ref().map(|b| b.get(mode));
        crate::ops::linear::linear(x, &self.weight.get(mode), bias.as_ref(), self.kernels)
    }
}
