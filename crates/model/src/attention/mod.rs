//! Attention modules inserted into the seed CNN's blocks and the ResNets' residual units, one
//! file per paper.
//!
//! Each module maps a feature map `[B, C, H, W]` to a re-weighted map of the same shape and
//! returns its gates for inspection (`block{i}.gate` `[B, C]`, `block{i}.spatial_gate`
//! `[B, 1, H, W]`).

pub mod cbam;
pub mod eca;
pub mod se;
pub mod spatial;

use candle_core::{Device, Result, Tensor};

pub use cbam::Cbam;
pub use eca::{Eca, EcaConfig};
pub use se::{Se, SeConfig};
pub use spatial::{SpatialAttention, SpatialConfig};

use crate::layers::{Mode, Param};
use crate::ops::attention::Then;
use crate::ops::kernels::Kernels;
use crate::spec::{AttentionKind, ModelSpec, Squeeze, BLOCK_CHANNELS};

/// Gate values produced by one attention forward (detached from the graph).
#[derive(Clone, Debug, Default)]
pub struct GateValues {
    /// Channel gate `[B, C]`.
    pub channel: Option<Tensor>,
    /// Spatial gate `[B, 1, H, W]`.
    pub spatial: Option<Tensor>,
}

impl From<crate::ops::attention::Attended> for (Tensor, GateValues) {
    fn from(a: crate::ops::attention::Attended) -> Self {
        (
            a.y,
            GateValues {
                channel: a.channel_gate,
                spatial: a.spatial_gate,
            },
        )
    }
}

/// The `state_dict` prefixes of an attention module's parts: its channel attention (SE, ECA,
/// CBAM's first half; `ca1`, `layer2.0.ca`) and its spatial attention (`sa1`, `layer2.0.sa`).
#[derive(Clone, Copy, Debug)]
pub struct Names<'a> {
    /// The channel attention's prefix.
    pub channel: &'a str,
    /// The spatial attention's prefix.
    pub spatial: &'a str,
}

/// One attention module of any kind.
#[derive(Clone, Debug)]
pub enum Attention {
    /// Squeeze-and-excitation.
    Se(Se),
    /// Efficient channel attention.
    Eca(Eca),
    /// Spatial attention (CBAM's spatial branch).
    Spatial(SpatialAttention),
    /// CBAM: channel then spatial attention.
    Cbam(Cbam),
}

impl Attention {
    /// Fast CPU kernels or plain candle ops for the module's fully connected layers, its
    /// convolution and its channel pooling.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        let se = match self {
            Attention::Se(m) => m,
            Attention::Cbam(m) => {
                m.spatial.conv.kernels = kernels;
                &mut m.channel
            }
            Attention::Spatial(m) => {
                m.conv.kernels = kernels;
                return;
            }
            Attention::Eca(m) => {
                m.kernels = kernels;
                return;
            }
        };
        se.fc0.kernels = kernels;
        se.fc2.kernels = kernels;
    }

    /// The module of `spec.attention` for the CNN's block `block` (1-based), named `ca{block}`
    /// and `sa{block}`, or `None` for no attention.
    pub fn for_block(
        spec: &ModelSpec,
        block: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Option<Attention>> {
        let names = Names {
            channel: &format!("ca{block}"),
            spatial: &format!("sa{block}"),
        };
        Attention::new(spec, BLOCK_CHANNELS[block - 1], names, seed, device)
    }

    /// The module of `spec.attention` over a map of `channels` channels, its parts named as
    /// `names` says, or `None` for no attention.
    pub fn new(
        spec: &ModelSpec,
        channels: usize,
        names: Names<'_>,
        seed: u64,
        device: &Device,
    ) -> Result<Option<Attention>> {
        let se_config = SeConfig {
            channels,
            hidden: spec.hidden_for_channels(channels),
            squeeze: spec.squeeze,
            gate: spec.gate,
            bias: spec.attention_bias,
        };
        let spatial_config = SpatialConfig {
            kernel: spec.spatial_kernel as usize,
            gate: spec.gate,
            bias: spec.attention_bias,
        };
        let (ca, sa) = (names.channel, names.spatial);
        Ok(Some(match spec.attention {
            AttentionKind::None => return Ok(None),
            AttentionKind::Se => Attention::Se(Se::new(se_config, ca, seed, device)?),
            AttentionKind::Eca => Attention::Eca(Eca::new(
                EcaConfig {
                    channels,
                    kernel: spec.eca_kernel_for_channels(channels),
                    squeeze: spec.squeeze,
                    gate: spec.gate,
                    bias: spec.attention_bias,
                },
                ca,
                seed,
                device,
            )?),
            AttentionKind::Spatial => {
                Attention::Spatial(SpatialAttention::new(spatial_config, sa, seed, device)?)
            }
            AttentionKind::Cbam => Attention::Cbam(Cbam::new(
                SeConfig {
                    squeeze: Squeeze::AvgMax,
                    ..se_config
                },
                spatial_config,
                names,
                seed,
                device,
            )?),
        }))
    }

    /// The parameters in `state_dict` order.
    pub fn params(&self) -> Vec<&Param> {
        match self {
            Attention::Se(m) => m.params(),
            Attention::Eca(m) => m.params(),
            Attention::Spatial(m) => m.params(),
            Attention::Cbam(m) => m.params(),
        }
    }

    /// Multiply-accumulates for one `C x h x w` input (FCs and convolutions; pooling, gates and
    /// the final re-weighting not counted).
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        match self {
            Attention::Se(m) => m.config.macs(),
            Attention::Eca(m) => m.config.macs(),
            Attention::Spatial(m) => m.config.macs(h, w),
            Attention::Cbam(m) => m.macs(h, w),
        }
    }

    /// The module followed by a 2x2 max-pool as one op, for spatial attention and CBAM with the
    /// fast CPU kernels ([`crate::ops::attention`]; SE and ECA fuse into the seed CNN's block op
    /// instead); `None` for the others and elsewhere.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H/2, W/2]`, gates).
    pub(crate) fn forward_pooled(
        &self,
        x: &Tensor,
        mode: Mode,
    ) -> Result<Option<(Tensor, GateValues)>> {
        match self {
            Attention::Spatial(m) => m.forward_fused(x, mode, Then::Pool),
            Attention::Cbam(m) => m.forward_fused(x, mode, Then::Pool),
            _ => Ok(None),
        }
    }

    /// `relu(module(x) + r)` as one op where the fast CPU kernels run for `x` (a residual unit's
    /// end with the module at the `standard` point); `None` elsewhere.
    ///
    /// # Shapes
    /// x, r: `[B, C, H, W]` -> (`[B, C, H, W]`, gates).
    pub(crate) fn forward_add_relu(
        &self,
        x: &Tensor,
        r: &Tensor,
        mode: Mode,
    ) -> Result<Option<(Tensor, GateValues)>> {
        let then = Then::AddRelu(r);
        match self {
            Attention::Se(m) => m.forward_fused(x, mode, None, then),
            Attention::Eca(m) => m.forward_fused(x, mode, then),
            Attention::Spatial(m) => m.forward_fused(x, mode, then),
            Attention::Cbam(m) => m.forward_fused(x, mode, then),
        }
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H, W]`, gates).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, GateValues)> {
        match self {
            Attention::Se(m) => m.forward(x, mode),
            Attention::Eca(m) => m.forward(x, mode),
            Attention::Spatial(m) => m.forward(x, mode),
            Attention::Cbam(m) => m.forward(x, mode),
        }
    }
}

/// Global pooling of each channel (the maximum as `kernels` computes it: on the generic path
/// with its gradient to the first maximum, as PyTorch's `adaptive_max_pool2d`).
///
/// # Shapes
/// x: `[B, C, H, W]` -> `[B, C]`.
pub fn squeeze_channels(
    x: &Tensor,
    how: Squeeze,
    kernels: Kernels,
) -> Result<(Tensor, Option<Tensor>)> {
    let flat = x.flatten_from(2)?;
    let max = || -> Result<Tensor> { kernels.max_keepdim(&flat, 2)?.squeeze(2) };
    Ok(match how {
        Squeeze::Avg => (flat.mean(2)?, None),
        Squeeze::Max => (max()?, None),
        Squeeze::AvgMax => (flat.mean(2)?, Some(max()?)),
    })
}

/// Multiplies `x` by a channel gate (candle's `broadcast_mul`; the fast CPU path re-weights
/// inside [`crate::ops::attention`] or the block op).
///
/// # Shapes
/// x: `[B, C, H, W]`, gate `[B, C]` -> `[B, C, H, W]`.
pub fn scale_channels(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    let (b, c) = gate.dims2()?;
    x.broadcast_mul(&gate.reshape((b, c, 1, 1))?)
}
