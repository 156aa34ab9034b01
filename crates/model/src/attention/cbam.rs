//! CBAM: S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM: Convolutional Block Attention Module",
//! ECCV 2018.
//!
//! Channel attention (average- and max-pooled descriptors through one shared MLP, summed, gated)
//! followed by spatial attention on the re-weighted map. Parameters: the channel MLP as SE's,
//! `ca{i}.fc.0.weight` `[hidden, C]`, `ca{i}.fc.2.weight` `[C, hidden]`; the spatial convolution
//! `sa{i}.conv.weight` `[1, 2, k, k]` (biases with `attention_bias`). With the fast CPU kernels
//! the whole module runs as one op ([`crate::ops::attention`]).

use candle_core::{Device, Result, Tensor};

use super::{scale_channels, GateValues, Names, Se, SeConfig, SpatialAttention, SpatialConfig};
use crate::layers::{Mode, Param};
use crate::ops::attention::Then;

/// The CBAM module.
#[derive(Clone, Debug)]
pub struct Cbam {
    /// Channel attention (`ca{i}`, squeeze `avg_max`).
    pub channel: Se,
    /// Spatial attention (`sa{i}`).
    pub spatial: SpatialAttention,
}

impl Cbam {
    /// A freshly initialized module whose halves are named `names.channel` (`ca1`) and
    /// `names.spatial` (`sa1`).
    pub fn new(
        channel: SeConfig,
        spatial: SpatialConfig,
        names: Names<'_>,
        seed: u64,
        device: &Device,
    ) -> Result<Cbam> {
        Ok(Cbam {
            channel: Se::new(channel, names.channel, seed, device)?,
            spatial: SpatialAttention::new(spatial, names.spatial, seed, device)?,
        })
    }

    /// The parameters in `state_dict` order (`ca` before `sa`).
    pub fn params(&self) -> Vec<&Param> {
        let mut p = self.channel.params();
        p.extend(self.spatial.params());
        p
    }

    /// Multiply-accumulates per image of `h x w`.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        self.channel.config.macs() + self.spatial.config.macs(h, w)
    }

    /// The module as one op ([`crate::ops::attention`]), then 2x2 max-pooled with `pool`, where
    /// the fast CPU kernels run for `x`; `None` elsewhere.
    ///
    /// # Shapes
    /// x: `[B, C, H, W]` -> as [`Cbam::forward`], `[B, C, H/2, W/2]` with `pool`.
    pub(crate) fn forward_fused(
        &self,
        x: &Tensor,
        mode: Mode,
        then: Then<'_>,
    ) -> Result<Option<(Tensor, GateValues)>> {
        if !self.spatial.fuses(x) {
            return Ok(None);
        }
        self.spatial.with_params(mode, |sp| {
            self.channel.forward_fused(x, mode, Some(sp), then)
        })
    }

    /// # Shapes
    /// x: `[B, C, H, W]` -> (`[B, C, H, W]`, channel gate `[B, C]` and spatial gate `[B, 1, H, W]`).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<(Tensor, GateValues)> {
        if let Some(out) = self.forward_fused(x, mode, Then::Map)? {
            return Ok(out);
        }
        let cg = self.channel.channel_gate(x, mode)?;
        let xc = scale_channels(x, &cg)?;
        let sg = self.spatial.spatial_gate(&xc, mode)?;
        let y = xc.broadcast_mul(&sg)?;
        Ok((
            y,
            GateValues {
                channel: Some(cg.detach()),
                spatial: Some(sg.detach()),
            },
        ))
    }
}
