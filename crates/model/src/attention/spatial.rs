//! Spatial attention, the spatial branch of S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM:
//! Convolutional Block Attention Module", ECCV 2018.
//!
//! `x * gate(conv_kxk([mean_c(x), max_c(x)]))`: the channel-wise mean and max maps, stacked in
//! that order as 2 channels, through one `k x k` convolution (zero padding `k / 2`, no bias) to
//! one map. Parameter `sa{i}.conv.weight` `[1, 2, k, k]` (as `nn.Conv2d(2, 1, k, padding=k//2,
//! bias=False)` named `conv`; `sa{i}.conv.bias` `[1]` with `attention_bias`). No BatchNorm after
//! the convolution (the paper's reference code has one; the common re-implementations and this
//! project's issue do not). With the fast CPU kernels the module runs as one op
//! ([`crate::ops::attention`]).

use candle_core::{Device, Result, Tensor};

use super::GateValues;
use crate::layers::{apply_gate, Conv2d, Conv2dConfig, Mode, Param};
use crate::ops::attention::{attend, SpatialGateParams, Then};
use crate::ops::kernels::Kernels;
use crate::spec::GateFunction;

/// Configuration of a [`SpatialAttention`] module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpatialConfig {
    /// Odd kernel side k (7 in the paper).
    pub kernel: usize,
    /// Gate function.
    pub gate: GateFunction,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

impl SpatialConfig {
    fn conv(&self) -> Conv2dConfig {
        Conv2dConfig {
            in_channels: 2,
            out_channels: 1,
            kernel: self.kernel,
            padding: self.kernel / 2,
            stride: 1,
            bias: self.bias,
        }
    }

    /// Multiply-accumulates per image of `h x w` (the convolution: `h * w * 2 * k^2`).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        self.conv().macs(h, w)
    }
}

/// The spatial-attention module.
#[derive(Clone, Debug)]
pub struct SpatialAttention {
    /// The configuration.
    pub config: SpatialConfig,
    /// `{prefix}.conv`: 2 -> 1 channels, `k x k`.
    pub conv: Conv2d,
}

impl SpatialAttention {
    /// A freshly initialized module named `prefix` (e.g. `sa1`).
    pub fn new(
        config: SpatialConfig,
        prefix: &str,
        seed: u64,
        device: &Device,
    ) -> Result<SpatialAttention> {
        if config.kernel.is_multiple_of(2) {
            candle_core::bail!(
                "spatial attention {prefix}: kernel size must be odd, got {}",
                config.kernel
            );
        }
        let conv = Conv2d::new(config.conv(), &format!("{prefix}.conv"), seed, device)?;
        Ok(SpatialAttention { config, conv })
    }

    /// The parameters in `state_dict` order.
    pub fn params(&self) -> Vec<&Param> {
        self.conv.params()
    }

    /// The spatial gate.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> `[B, 1, H, W]`.
    pub fn spatial_gate(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let pooled = channel_mean_max(x, self.conv.kernels)?;
        apply_gate(
            &self.conv.forward(&pooled, mode)?,
            self.config.gate,
            self.conv.kernels,
        )
    }

    /// Whether [`SpatialAttention::forward_fused`] runs for `x` (the fast kernels on the CPU).
    pub(crate) fn fuses(&self, x: &Tensor) -> bool {
        self.conv.kernels.use_fast(x.device(), x.dtype())
    }

    /// Calls `f` with the module's parameters as the fused op takes them.
    pub(crate) fn with_params<R>(
        &self,
        mode: Mode,
        f: impl FnOnce(&SpatialGateParams<'_>) -> R,
    ) -> R {
        let weight = self.conv.weight.get(mode);
        let bias = self.conv.bias.as_ref().map(|b| b.get(mode));
        f(&SpatialGateParams {
            weight: &weight,
            bias: bias.as_ref(),
            gate: self.config.gate,
        })
    }

    /// The module as one op ([`crate::ops::attention`]), then 2x2 max-pooled with `pool`, where
    /// the fast CPU kernels run for `x`; `None` elsewhere.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> as [`SpatialAttention::forward`], `[B, C, H/2, W/2]` with `pool`.
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        mode: Mode,
        then: Then<'_>,
    ) -> Result<Option<(Tensor, GateValues)>> {
        if !self.fuses(x) {
            return Ok(None);
        }
        let out = self.with_params(mode, |sp| attend(x, None, Some(sp), then))?;
        Ok(Some(out.into()))
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H, W]`, spatial gate `[B, 1, H, W]`).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, GateValues)> {
        if let Some(out) = self.forward_fused(x, mode, Then::Map)? {
            return Ok(out);
        }
        let g = self.spatial_gate(x, mode)?;
        let y = x.broadcast_mul(&g)?;
        Ok((
            y,
            GateValues {
                channel: None,
                spatial: Some(g.detach()),
            },
        ))
    }
}

/// The channel-wise mean and maximum, stacked in that order (`[B, C, H, W] -> [B, 2, H, W]`):
/// candle's `mean_keepdim` and `kernels`' maximum over the channels ([`Kernels::max_keepdim`]:
/// on the generic path the gradient goes to the first maximal channel, as
/// `torch.max(x, dim=1)`). The fast CPU path computes it inside [`crate::ops::attention`].
fn channel_mean_max(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    let avg = x.mean_keepdim(1)?;
    let max = kernels.max_keepdim(x, 1)?;
    Tensor::cat(&[&avg, &max], 1)
}
