//! The value sets of the `[model]` table's keys: network family, attention module, its place in
//! a block, the channel descriptor and the gate function; each serialized in snake case as the
//! TOML file spells it.

use serde::{Deserialize, Serialize};

/// Network family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Three conv-BN-ReLU-pool blocks (32/64/128 channels), FC 2048-512-classes (also spelled
    /// `cnn`).
    #[default]
    #[serde(alias = "cnn")]
    SeedCnn,
    /// He et al.'s CIFAR ResNet (CVPR 2016, Sec. 4.2): depth `6n + 2`, three stages of `n`
    /// residual units with 16/32/64 channels (times `width`).
    Resnet,
}

impl Arch {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::SeedCnn => "seed_cnn",
            Arch::Resnet => "resnet",
        }
    }
}

/// A ResNet's shortcut where a unit changes the shape (He et al. 2016, Sec. 3.3); every other
/// shortcut is the identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Option A: the identity subsampled with stride 2, the new channels zero (no parameters;
    /// the paper's CIFAR networks).
    #[default]
    A,
    /// Option B: a 1x1 convolution with stride 2 (no bias) and BatchNorm (a projection).
    B,
}

/// Where a ResNet's residual unit holds its attention module: the integration strategies of
/// Hu et al., "Squeeze-and-Excitation Networks" (TPAMI 2019), Fig. 5 and Table 14.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integration {
    /// On the residual branch, after its last BatchNorm, before the addition (the SE block).
    #[default]
    Standard,
    /// Before the unit, on the residual branch's input (SE-PRE): the shortcut sees `x` itself.
    Pre,
    /// After the addition and the ReLU (SE-POST).
    Post,
    /// On the identity branch (SE-Identity): on the shortcut's output, in parallel with the
    /// residual branch.
    Identity,
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
