//! The value sets of the `[model]` table's keys: network family, attention module, its place in
//! a block, the channel descriptor and the gate function; each serialized in snake case as the
//! TOML file spells it.

use serde::{Deserialize, Serialize};

/// Network family. Only the seed CNN exists so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Three conv-BN-ReLU-pool blocks (32/64/128 channels), FC 2048-512-classes.
    #[default]
    SeedCnn,
}

/// Which attention module is inserted in the attended blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// No attention: the seed CNN itself.
    #[default]
    None,
    /// Squeeze-and-excitation (Hu et al., 2018).
    Se,
    /// Efficient channel attention (Wang et al., 2020).
    Eca,
    /// CBAM's spatial attention alone (Woo et al., 2018).
    Spatial,
    /// CBAM: channel attention then spatial attention (Woo et al., 2018).
    Cbam,
}

impl AttentionKind {
    /// Whether this module has a channel-attention MLP whose width is set by `reduction`.
    pub fn uses_reduction(self) -> bool {
        matches!(self, AttentionKind::Se | AttentionKind::Cbam)
    }
    /// Whether this module produces a channel gate (`block{i}.gate`).
    pub fn has_channel_gate(self) -> bool {
        matches!(
            self,
            AttentionKind::Se | AttentionKind::Eca | AttentionKind::Cbam
        )
    }
    /// Whether this module produces a spatial gate (`block{i}.spatial_gate`).
    pub fn has_spatial_gate(self) -> bool {
        matches!(self, AttentionKind::Spatial | AttentionKind::Cbam)
    }
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttentionKind::None => "none",
            AttentionKind::Se => "se",
            AttentionKind::Eca => "eca",
            AttentionKind::Spatial => "spatial",
            AttentionKind::Cbam => "cbam",
        }
    }
}

/// Where, inside a block (conv -> BN -> ReLU -> max-pool), the attention module sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// After the convolution, before BatchNorm.
    PostConv,
    /// After BatchNorm, before ReLU.
    PostBn,
    /// After ReLU, before max-pooling (the seed's).
    #[default]
    PostRelu,
    /// After max-pooling (on the halved map).
    PostPool,
}

/// How a channel descriptor is squeezed out of a feature map (SE and ECA; CBAM always uses
/// `avg_max`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Squeeze {
    /// Global average pooling (the seed's).
    #[default]
    Avg,
    /// Global max pooling.
    Max,
    /// Both, each through the shared excitation, summed before the gate (as CBAM).
    AvgMax,
}

/// The gate function turning excitation logits into multipliers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateFunction {
    /// Logistic sigmoid (the seed's).
    #[default]
    Sigmoid,
    /// PyTorch's `Hardsigmoid`: `relu6(x + 3) / 6`.
    HardSigmoid,
}
