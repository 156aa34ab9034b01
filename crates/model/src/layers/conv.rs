//! 2-D convolution (`torch.nn.Conv2d`, square kernel, any stride, zero padding).

use candle_core::{Device, Result, Tensor};

use super::{Mode, Param};
use crate::init;
use crate::ops::kernels::Kernels;

/// Configuration of a [`Conv2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Stride in both directions (1: every position).
    pub stride: usize,
    /// Whether there is a bias.
    pub bias: bool,
}

impl Conv2dConfig {
    /// Fan-in of PyTorch's default init: `in_channels * kernel^2`.
    pub fn fan_in(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// Output side for an input side `s`: `(s + 2p - k) / stride + 1`.
    pub fn out_side(&self, s: usize) -> usize {
        (s + 2 * self.padding - self.kernel) / self.stride.max(1) + 1
    }

    /// Multiply-accumulates for one image of `h x w` (bias additions not counted).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        (self.out_channels * self.out_side(h) * self.out_side(w) * self.fan_in()) as u64
    }
}

/// `torch.nn.Conv2d` with PyTorch's default init; parameters `{prefix}.weight`
/// `[out, in, k, k]` and `{prefix}.bias` `[out]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// The configuration.
    pub config: Conv2dConfig,
    /// `[out, in, k, k]`.
    pub weight: Param,
    /// `[out]`, when `config.bias`.
    pub bias: Option<Param>,
    /// Fast CPU kernel (`crate::ops::conv`) or plain candle ops; [`Kernels::Fast`] by default.
    pub kernels: Kernels,
}

impl Conv2d {
    /// A freshly initialized convolution named `prefix`.
    pub fn new(config: Conv2dConfig, prefix: &str, seed: u64, device: &Device) -> Result<Conv2d> {
        let bound = init::default_bound(config.fan_in());
        let wname = format!("{prefix}.weight");
        let shape = (
            config.out_channels,
            config.in_channels,
            config.kernel,
            config.kernel,
        );
        let weight = Param::new(&wname, init::uniform(seed, &wname, shape, bound, device)?)?;
        let bias = if config.bias {
            let bname = format!("{prefix}.bias");
            let b = init::uniform(seed, &bname, config.out_channels, bound, device)?;
            Some(Param::new(bname, b)?)
        } else {
            None
        };
        Ok(Conv2d {
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
    /// x: `[B, in, H, W]` -> `[B, out, (H + 2p - k) / stride + 1, (W + 2p - k) / stride + 1]`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let bias = self.bias.as_ref().map(|b| b.get(mode));
        crate::ops::conv::conv2d_strided(
            x,
            &self.weight.get(mode),
            bias.as_ref(),
            self.config.padding,
            self.config.stride,
            self.kernels,
        )
    }
}
