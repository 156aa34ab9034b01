//! Efficient channel attention: Q. Wang, B. Wu, P. Zhu, P. Li, W. Zuo, Q. Hu, "ECA-Net:
//! Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020.
//!
//! `x * gate(conv1d_k(squeeze(x)))`: a 1-D convolution across the channel descriptor (one
//! input and output channel, zero padding `(k - 1) / 2`, no bias as the paper's code), with
//! `k` from C by the paper's eq. (12) (gamma 2, b 1, nearest odd) unless set. Parameter
//! `ca{i}.conv.weight` `[1, 1, k]` (as `nn.Conv1d(1, 1, k, bias=False)` named `conv`;
//! `ca{i}.conv.bias` `[1]` with `attention_bias`). With the `avg_max` squeeze, both descriptors
//! are convolved and summed before the gate. With the fast CPU kernels the module runs as one op
//! ([`crate::ops::attention`]; in the seed CNN's blocks, inside the block's).

use candle_core::{Device, Result, Tensor};

use super::{scale_channels, squeeze_channels, GateValues};
use crate::init;
use crate::layers::{apply_gate, Mode, Param};
use crate::ops::attention::{attend, Then};
use crate::ops::block::{ChannelGate, EcaParams};
use crate::ops::generic;
use crate::ops::kernels::Kernels;
use crate::spec::{GateFunction, Squeeze};

/// Configuration of an [`Eca`] module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcaConfig {
    /// Channels C of the attended map.
    pub channels: usize,
    /// Odd kernel size k of the 1-D convolution.
    pub kernel: usize,
    /// How the channel descriptor is pooled.
    pub squeeze: Squeeze,
    /// Gate function.
    pub gate: GateFunction,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

impl EcaConfig {
    /// Multiply-accumulates per image (`C * k`, twice with `avg_max`).
    pub fn macs(&self) -> u64 {
        let once = (self.channels * self.kernel) as u64;
        match self.squeeze {
            Squeeze::AvgMax => 2 * once,
            _ => once,
        }
    }
}

/// The ECA module.
#[derive(Clone, Debug)]
pub struct Eca {
    /// The configuration.
    pub config: EcaConfig,
    /// `{prefix}.conv.weight` `[1, 1, k]`.
    pub weight: Param,
    /// `{prefix}.conv.bias` `[1]`.
    pub bias: Option<Param>,
    /// candle's `conv1d` and reductions, or the generic path's (`crate::ops::generic`);
    /// [`Kernels::Fast`] by default (the fused block op takes ECA over on the CPU).
    pub kernels: Kernels,
}

impl Eca {
    /// A freshly initialized module named `prefix` (e.g. `ca1`).
    pub fn new(config: EcaConfig, prefix: &str, seed: u64, device: &Device) -> Result<Eca> {
        if config.kernel.is_multiple_of(2) {
            candle_core::bail!(
                "eca {prefix}: kernel size must be odd, got {}",
                config.kernel
            );
        }
        let bound = init::default_bound(config.kernel);
        let wname = format!("{prefix}.conv.weight");
        let weight = Param::new(
            &wname,
            init::uniform(seed, &wname, (1, 1, config.kernel), bound, device)?,
        )?;
        let bias = if config.bias {
            let bname = format!("{prefix}.conv.bias");
            Some(Param::new(
                &bname,
                init::uniform(seed, &bname, 1, bound, device)?,
            )?)
        } else {
            None
        };
        Ok(Eca {
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

    fn conv(&self, s: &Tensor, mode: Mode) -> Result<Tensor> {
        if self.kernels.use_generic(s.device()) {
            let bias = self.bias.as_ref().map(|b| b.get(mode));
            return generic::conv1d_channels(s, &self.weight.get(mode), bias.as_ref());
        }
        let (b, c) = s.dims2()?;
        let y = s
            .reshape((b, 1, c))?
            .conv1d(
                &self.weight.get(mode),
                (self.config.kernel - 1) / 2,
                1,
                1,
                1,
            )?
            .reshape((b, c))?;
        match &self.bias {
            Some(bias) => y.broadcast_add(&bias.get(mode)),
            None => Ok(y),
        }
    }

    /// The channel gate.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> `[B, C]`.
    pub fn channel_gate(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (first, second) = squeeze_channels(x, self.config.squeeze, self.kernels)?;
        let mut z = self.conv(&first, mode)?;
        if let Some(s) = second {
            z = (z + self.conv(&s, mode)?)?;
        }
        apply_gate(&z, self.config.gate, self.kernels)
    }

    /// The module as one op ([`crate::ops::attention`]), followed by `then`, where the fast
    /// CPU kernels run for `x`; `None` elsewhere.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> as [`Eca::forward`] (pooled with [`Then::Pool`]).
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        mode: Mode,
        then: Then<'_>,
    ) -> Result<Option<(Tensor, GateValues)>> {
        if !self.kernels.use_fast(x.device(), x.dtype()) {
            return Ok(None);
        }
        let weight = self.weight.get(mode);
        let bias = self.bias.as_ref().map(|b| b.get(mode));
        let gate = ChannelGate::Eca(EcaParams {
            weight: &weight,
            bias: bias.as_ref(),
            squeeze: self.config.squeeze,
            gate: self.config.gate,
        });
        Ok(Some(attend(x, Some(&gate), None, then)?.into()))
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H, W]`, channel gate `[B, C]`).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, GateValues)> {
        if let Some(out) = self.forward_fused(x, mode, Then::Map)? {
            return Ok(out);
        }
        let g = self.channel_gate(x, mode)?;
        let y = scale_channels(x, &g)?;
        Ok((
            y,
            GateValues {
                channel: Some(g.detach()),
                spatial: None,
            },
        ))
    }
}
