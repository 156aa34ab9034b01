//! Squeeze-and-excitation: J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
//!
//! `x * gate(W2 relu(W1 squeeze(x)))`, with `W1: C -> max(1, C / r)` and `W2: back to C`, as the
//! seed's `nn.Sequential(Linear, ReLU, Linear, Sigmoid)` named `ca{i}.fc`: parameters
//! `ca{i}.fc.0.weight` `[hidden, C]` and `ca{i}.fc.2.weight` `[C, hidden]` (plus `.bias` with
//! `attention_bias`). With the `avg_max` squeeze, both descriptors go through the shared MLP and
//! are summed before the gate, as CBAM's channel attention. With the fast CPU kernels the module
//! runs as one op ([`crate::ops::attention`]; in the seed CNN's blocks, inside the block's).

use candle_core::{Device, Result, Tensor};

use super::{scale_channels, squeeze_channels, GateValues};
use crate::layers::{apply_gate, Linear, LinearConfig, Mode, Param};
use crate::ops::attention::{attend, SpatialGateParams, Then};
use crate::ops::block::{ChannelGate, SeParams};
use crate::spec::{GateFunction, Squeeze};

/// Configuration of an [`Se`] module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeConfig {
    /// Channels C of the attended map.
    pub channels: usize,
    /// Width of the bottleneck, `max(1, C / r)`.
    pub hidden: usize,
    /// How the channel descriptor is pooled.
    pub squeeze: Squeeze,
    /// Gate function.
    pub gate: GateFunction,
    /// Whether the two FCs have biases.
    pub bias: bool,
}

impl SeConfig {
    /// Multiply-accumulates per image (the two FCs, twice with `avg_max`).
    pub fn macs(&self) -> u64 {
        let once = 2 * (self.channels * self.hidden) as u64;
        match self.squeeze {
            Squeeze::AvgMax => 2 * once,
            _ => once,
        }
    }
}

/// The SE module (also CBAM's channel attention).
#[derive(Clone, Debug)]
pub struct Se {
    /// The configuration.
    pub config: SeConfig,
    /// `{prefix}.fc.0`: C -> hidden.
    pub fc0: Linear,
    /// `{prefix}.fc.2`: hidden -> C.
    pub fc2: Linear,
}

impl Se {
    /// A freshly initialized module named `prefix` (e.g. `ca1`).
    pub fn new(config: SeConfig, prefix: &str, seed: u64, device: &Device) -> Result<Se> {
        let fc0 = Linear::new(
            LinearConfig {
                in_features: config.channels,
                out_features: config.hidden,
                bias: config.bias,
            },
            &format!("{prefix}.fc.0"),
            seed,
            device,
        )?;
        let fc2 = Linear::new(
            LinearConfig {
                in_features: config.hidden,
                out_features: config.channels,
                bias: config.bias,
            },
            &format!("{prefix}.fc.2"),
            seed,
            device,
        )?;
        Ok(Se { config, fc0, fc2 })
    }

    /// The parameters in `state_dict` order.
    pub fn params(&self) -> Vec<&Param> {
        let mut p = self.fc0.params();
        p.extend(self.fc2.params());
        p
    }

    fn excite(&self, s: &Tensor, mode: Mode) -> Result<Tensor> {
        let hidden = self.fc0.kernels.relu(&self.fc0.forward(s, mode)?)?;
        self.fc2.forward(&hidden, mode)
    }

    /// The channel gate.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> `[B, C]`.
    pub fn channel_gate(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let kernels = self.fc0.kernels;
        let (first, second) = squeeze_channels(x, self.config.squeeze, kernels)?;
        let mut z = self.excite(&first, mode)?;
        if let Some(s) = second {
            z = (z + self.excite(&s, mode)?)?;
        }
        apply_gate(&z, self.config.gate, kernels)
    }

    /// The module as one op ([`crate::ops::attention`]), with the spatial gate `spatial` after
    /// it (CBAM) and then a 2x2 max-pool with `pool`, where the fast CPU kernels run for `x`;
    /// `None` elsewhere.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> as [`Se::forward`] (`[B, C, H/2, W/2]` with `pool`; with `spatial`
    /// also the spatial gate).
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        mode: Mode,
        spatial: Option<&SpatialGateParams<'_>>,
        then: Then<'_>,
    ) -> Result<Option<(Tensor, GateValues)>> {
        let kernels = self.fc0.kernels;
        if !(kernels.use_fast(x.device(), x.dtype()) && self.fc2.kernels == kernels) {
            return Ok(None);
        }
        let (w1, w2) = (self.fc0.weight.get(mode), self.fc2.weight.get(mode));
        let b1 = self.fc0.bias.as_ref().map(|b| b.get(mode));
        let b2 = self.fc2.bias.as_ref().map(|b| b.get(mode));
        let gate = ChannelGate::Se(SeParams {
            w1: &w1,
            b1: b1.as_ref(),
            w2: &w2,
            b2: b2.as_ref(),
            squeeze: self.config.squeeze,
            gate: self.config.gate,
        });
        Ok(Some(attend(x, Some(&gate), spatial, then)?.into()))
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H, W]`, channel gate `[B, C]`).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, GateValues)> {
        if let Some(out) = self.forward_fused(x, mode, None, Then::Map)? {
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
