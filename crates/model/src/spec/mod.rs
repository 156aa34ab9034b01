//! `ModelSpec`: the `[model]` table of an experiment, and its one-line form.
//!
//! The TOML table and the command-line SPEC string (`attention=se,reduction=8,blocks=1+3`,
//! see `docs/models.md`) have the same keys and the same defaults; both go through serde, so
//! an unknown key or value is reported the same way.
//!
//! - `mod.rs`: [`ModelSpec`], its defaults, validation ([`SpecError`]) and derived sizes;
//! - `kinds.rs`: the keys' value sets ([`Arch`], [`AttentionKind`], [`Placement`],
//!   [`Squeeze`], [`GateFunction`], [`Shortcut`], [`Integration`]);
//! - `blocks.rs`: [`BlockSet`], the attended blocks (the CNN's blocks, a ResNet's stages);
//! - `resnet.rs`: the ResNet keys' checks and the geometry both architectures share
//!   (channels per block or stage, the channels an attention module sees);
//! - `text.rs`: the SPEC string (`Display`, `FromStr`).

mod blocks;
mod kinds;
mod resnet;
mod text;

use serde::{Deserialize, Serialize};

pub use blocks::BlockSet;
pub use kinds::{Arch, AttentionKind, GateFunction, Integration, Placement, Shortcut, Squeeze};
pub use resnet::{MAX_RESNET_DEPTH, MAX_RESNET_WIDTH, RESNET_STAGE_CHANNELS};

/// Channel widths of the seed CNN's three blocks.
pub const BLOCK_CHANNELS: [usize; 3] = [32, 64, 128];

/// Side of the (square) feature map entering block 1..3 (CIFAR input 32x32, halved by each pool).
pub const BLOCK_INPUT_SIDE: [usize; 3] = [32, 16, 8];

/// Largest spatial-attention kernel accepted (odd).
pub const MAX_SPATIAL_KERNEL: u32 = 15;

/// The `[model]` table of an experiment TOML (all keys optional; defaults are the seed CNN's
/// settings, with `attention = "none"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    /// Network family.
    pub arch: Arch,
    /// ResNet: depth `6n + 2` (20, 32, 44, 56, 110, ...).
    #[serde(skip_serializing_if = "resnet::is_default_depth")]
    pub depth: u32,
    /// ResNet: the shortcut where a unit changes the shape.
    #[serde(skip_serializing_if = "resnet::is_default_shortcut")]
    pub shortcut: Shortcut,
    /// ResNet: width multiplier of the 16/32/64 channels.
    #[serde(skip_serializing_if = "resnet::is_default_width")]
    pub width: u32,
    /// ResNet: where a residual unit holds its attention module.
    #[serde(skip_serializing_if = "resnet::is_default_integration")]
    pub integration: Integration,
    /// Attention module inserted in the attended blocks.
    pub attention: AttentionKind,
    /// Reduction ratio r of the channel MLP (SE, CBAM): hidden width `max(1, C / r)` exactly.
    pub reduction: u32,
    /// Where in the CNN's block the attention module sits.
    pub placement: Placement,
    /// Which blocks (CNN) or stages (ResNet) get attention modules.
    pub blocks: BlockSet,
    /// Channel squeeze (SE, ECA).
    pub squeeze: Squeeze,
    /// Gate function of every attention module.
    pub gate: GateFunction,
    /// Whether the attention FCs / convolutions have a bias (the seed's SE has none).
    pub attention_bias: bool,
    /// ECA's 1-D kernel size; `None`: from the channel count as in the ECA-Net paper.
    pub eca_kernel: Option<u32>,
    /// Kernel size of the spatial-attention convolution (spatial, CBAM).
    pub spatial_kernel: u32,
    /// Dropout probability before the CNN's last linear layer (the ResNet has none).
    pub dropout: f32,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            arch: Arch::SeedCnn,
            depth: resnet::DEFAULT_DEPTH,
            shortcut: Shortcut::A,
            width: 1,
            integration: Integration::Standard,
            attention: AttentionKind::None,
            reduction: 16,
            placement: Placement::PostRelu,
            blocks: BlockSet::ALL,
            squeeze: Squeeze::Avg,
            gate: GateFunction::Sigmoid,
            attention_bias: false,
            eca_kernel: None,
            spatial_kernel: 7,
            dropout: 0.5,
        }
    }
}

/// An invalid model specification; the message names the key at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    /// A value outside its allowed range.
    #[error("model.{key} must be {expected}, got {got}")]
    Invalid {
        /// The key, without the `model.` prefix.
        key: &'static str,
        /// What is allowed, as a fragment ("between 1 and 32 (...)").
        expected: String,
        /// The value given.
        got: String,
    },
    /// A key that the architecture does not have, set to something other than its default.
    #[error("model.{key} applies to arch = \"{applies_to}\" only (this model is arch = \"{arch}\"), got {got}")]
    OtherArch {
        /// The key, without the `model.` prefix.
        key: &'static str,
        /// The architecture that has the key.
        applies_to: &'static str,
        /// The spec's architecture.
        arch: &'static str,
        /// The value given.
        got: String,
    },
    /// A SPEC-string item that is not `key=value`.
    #[error(
        "invalid model spec item `{item}`: expected key=value (e.g. attention=se,reduction=8)"
    )]
    Syntax {
        /// The offending item.
        item: String,
    },
    /// A key given twice in a SPEC string.
    #[error("model spec key `{key}` given twice")]
    Duplicate {
        /// The repeated key.
        key: String,
    },
    /// An unknown key or an unparsable value in a SPEC string.
    #[error("invalid model spec `{spec}`: {message}")]
    Parse {
        /// The whole SPEC string.
        spec: String,
        /// serde's description (unknown field / unknown variant / wrong type ...).
        message: String,
    },
}

/// ECA-Net's adaptive kernel size: `t = |(log2(C) + b) / gamma|`, rounded to the odd number
/// `t` if odd else `t + 1` (gamma 2, b 1): 3 for C = 32 and 64, 5 for C = 128.
pub fn eca_adaptive_kernel(channels: usize) -> usize {
    let t = (((channels as f64).log2() + 1.0) / 2.0).abs() as usize;
    if t % 2 == 1 {
        t
    } else {
        t + 1
    }
}

impl ModelSpec {
    /// ECA kernel size used in the CNN's block `i` (1-based).
    pub fn eca_kernel_for(&self, block: usize) -> usize {
        self.eca_kernel_for_channels(BLOCK_CHANNELS[block - 1])
    }

    /// ECA kernel size of a module that sees `channels` channels: `eca_kernel`, or the
    /// adaptive size.
    pub fn eca_kernel_for_channels(&self, channels: usize) -> usize {
        match self.eca_kernel {
            Some(k) => k as usize,
            None => eca_adaptive_kernel(channels),
        }
    }

    /// Hidden width of the channel MLP in the CNN's block `i` (1-based): `max(1, C / r)`.
    pub fn hidden_for(&self, block: usize) -> usize {
        self.hidden_for_channels(BLOCK_CHANNELS[block - 1])
    }

    /// Hidden width of a channel MLP over `channels` channels: `max(1, C / r)`.
    pub fn hidden_for_channels(&self, channels: usize) -> usize {
        (channels / self.reduction.max(1) as usize).max(1)
    }

    /// Checks every range constraint; the error names the key.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.validate_arch()?;
        let narrowest = self.attended_channels().into_iter().min().unwrap_or(1);
        let narrowest_what = match self.arch {
            Arch::SeedCnn => "the narrowest attended block's channels",
            Arch::Resnet => "the fewest channels an attention module sees",
        };
        if self.attention.uses_reduction() && !(1..=narrowest as u32).contains(&self.reduction) {
            return Err(SpecError::Invalid {
                key: "reduction",
                expected: format!("between 1 and {narrowest} ({narrowest_what})"),
                got: self.reduction.to_string(),
            });
        }
        if self.attention == AttentionKind::Eca {
            if let Some(k) = self.eca_kernel {
                if k % 2 == 0 || k as usize > narrowest {
                    return Err(SpecError::Invalid {
                        key: "eca_kernel",
                        expected: format!("odd and between 1 and {narrowest} ({narrowest_what})"),
                        got: k.to_string(),
                    });
                }
            }
        }
        if self.attention.has_spatial_gate()
            && (self.spatial_kernel.is_multiple_of(2)
                || !(1..=MAX_SPATIAL_KERNEL).contains(&self.spatial_kernel))
        {
            return Err(SpecError::Invalid {
                key: "spatial_kernel",
                expected: format!("odd and between 1 and {MAX_SPATIAL_KERNEL}"),
                got: self.spatial_kernel.to_string(),
            });
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(SpecError::Invalid {
                key: "dropout",
                expected: "at least 0 and below 1".into(),
                got: self.dropout.to_string(),
            });
        }
        Ok(())
    }

    /// The same model with the keys that do not affect it reset to their defaults (e.g.
    /// `reduction` when `attention = "none"`), so equal models compare equal.
    pub fn canonical(&self) -> ModelSpec {
        let d = ModelSpec::default();
        let mut s = self.clone();
        match s.arch {
            // the ResNet has no placement (its `integration` says where) and no dropout
            Arch::Resnet => {
                s.placement = d.placement;
                s.dropout = d.dropout;
            }
            Arch::SeedCnn => {
                s.depth = d.depth;
                s.shortcut = d.shortcut;
                s.width = d.width;
                s.integration = d.integration;
            }
        }
        if s.attention == AttentionKind::None {
            return ModelSpec {
                arch: s.arch,
                depth: s.depth,
                shortcut: s.shortcut,
                width: s.width,
                dropout: s.dropout,
                ..d
            };
        }
        if !s.attention.uses_reduction() {
            s.reduction = d.reduction;
        }
        if !matches!(s.attention, AttentionKind::Se | AttentionKind::Eca) {
            s.squeeze = d.squeeze;
        }
        if s.attention != AttentionKind::Eca {
            s.eca_kernel = d.eca_kernel;
        }
        if !s.attention.has_spatial_gate() {
            s.spatial_kernel = d.spatial_kernel;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed() {
        let s: ModelSpec = toml::from_str("").unwrap();
        assert_eq!(s, ModelSpec::default());
        assert_eq!(s.attention, AttentionKind::None);
        assert_eq!(s.reduction, 16);
        assert_eq!(s.placement, Placement::PostRelu);
        assert_eq!(s.blocks, BlockSet::ALL);
        assert_eq!(s.dropout, 0.5);
        s.validate().unwrap();
    }

    #[test]
    fn toml_table_parses_lists_and_strings() {
        let s: ModelSpec = toml::from_str(
            "attention = \"cbam\"\nreduction = 8\nblocks = [1, 3]\nplacement = \"post_pool\"\ngate = \"hard_sigmoid\"\ndropout = 0",
        )
        .unwrap();
        assert_eq!(s.attention, AttentionKind::Cbam);
        assert_eq!(s.blocks, BlockSet::new(&[1, 3]).unwrap());
        assert_eq!(s.placement, Placement::PostPool);
        assert_eq!(s.gate, GateFunction::HardSigmoid);
        assert_eq!(s.dropout, 0.0);
        let s2: ModelSpec = toml::from_str("blocks = \"2+3\"").unwrap();
        assert_eq!(s2.blocks, BlockSet::new(&[2, 3]).unwrap());
        // round trip through TOML
        let text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<ModelSpec>(&text).unwrap(), s);
    }

    #[test]
    fn toml_rejects_unknown_keys_and_bad_blocks() {
        let e = toml::from_str::<ModelSpec>("reductoin = 4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reductoin"), "{e}");
        let e = toml::from_str::<ModelSpec>("blocks = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        let e = toml::from_str::<ModelSpec>("blocks = [1, 4]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid block 4"), "{e}");
        let e = toml::from_str::<ModelSpec>("blocks = [2, 2]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = toml::from_str::<ModelSpec>("attention = \"sse\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sse") && e.contains("cbam"), "{e}");
    }

    #[test]
    fn from_str_fills_defaults() {
        let s: ModelSpec = "attention=se,reduction=8,blocks=1+3".parse().unwrap();
        assert_eq!(
            s,
            ModelSpec {
                attention: AttentionKind::Se,
                reduction: 8,
                blocks: BlockSet::new(&[1, 3]).unwrap(),
                ..ModelSpec::default()
            }
        );
        assert_eq!(
            "attention=none".parse::<ModelSpec>().unwrap(),
            ModelSpec::default()
        );
        assert_eq!("".parse::<ModelSpec>().unwrap(), ModelSpec::default());
        let s: ModelSpec =
            " attention = eca , eca_kernel = auto , dropout = 0 , attention_bias=true"
                .parse()
                .unwrap();
        assert_eq!(s.eca_kernel, None);
        assert_eq!(s.dropout, 0.0);
        assert!(s.attention_bias);
        let s: ModelSpec = "attention=eca,eca_kernel=5,squeeze=avg_max"
            .parse()
            .unwrap();
        assert_eq!(s.eca_kernel, Some(5));
        assert_eq!(s.squeeze, Squeeze::AvgMax);
    }

    #[test]
    fn from_str_errors_are_clear() {
        let e = "attention=se,reduction=0".parse::<ModelSpec>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "model.reduction must be between 1 and 32 (the narrowest attended block's channels), got 0"
        );
        let e = "attention=se,blocks=3,reduction=200"
            .parse::<ModelSpec>()
            .unwrap_err();
        assert!(e.to_string().contains("between 1 and 128"), "{e}");
        let e = "attention=foo"
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `foo`") && e.contains("se"),
            "{e}"
        );
        let e = "colour=red".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = "attention".parse::<ModelSpec>().unwrap_err();
        assert!(matches!(e, SpecError::Syntax { .. }), "{e}");
        let e = "reduction=4,reduction=8".parse::<ModelSpec>().unwrap_err();
        assert_eq!(e.to_string(), "model spec key `reduction` given twice");
        let e = "blocks=1+5".parse::<ModelSpec>().unwrap_err().to_string();
        assert!(e.contains("invalid block `5`"), "{e}");
        let e = "reduction=abc"
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("reduction") || e.contains("integer"), "{e}");
        let e = "dropout=1".parse::<ModelSpec>().unwrap_err().to_string();
        assert_eq!(e, "model.dropout must be at least 0 and below 1, got 1");
        let e = "attention=cbam,spatial_kernel=4"
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("model.spatial_kernel must be odd"), "{e}");
        let e = "attention=eca,eca_kernel=2"
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("model.eca_kernel must be odd"), "{e}");
    }

    #[test]
    fn reduction_is_only_checked_where_used() {
        // ECA has no MLP: its reduction is unused and not checked.
        "attention=eca,reduction=0".parse::<ModelSpec>().unwrap();
        // the narrowest attended block decides the upper bound
        "attention=se,blocks=2+3,reduction=64"
            .parse::<ModelSpec>()
            .unwrap();
        assert!("attention=se,blocks=1+3,reduction=64"
            .parse::<ModelSpec>()
            .is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "attention=none",
            "attention=se,reduction=8,blocks=1+3",
            "attention=cbam,placement=post_bn,gate=hard_sigmoid,attention_bias=true,spatial_kernel=3,dropout=0.25",
            "attention=eca,squeeze=max,eca_kernel=5",
        ] {
            let s: ModelSpec = text.parse().unwrap();
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_string().parse::<ModelSpec>().unwrap(), s);
        }
    }

    #[test]
    fn eca_kernel_follows_the_paper() {
        // ECA-Net, eq. (12) with gamma = 2, b = 1
        assert_eq!(eca_adaptive_kernel(32), 3);
        assert_eq!(eca_adaptive_kernel(64), 3);
        assert_eq!(eca_adaptive_kernel(128), 5);
        assert_eq!(eca_adaptive_kernel(256), 5);
        assert_eq!(eca_adaptive_kernel(512), 5);
    }

    #[test]
    fn hidden_width_is_floor_not_rounded() {
        let s: ModelSpec = "attention=se,reduction=16".parse().unwrap();
        assert_eq!(s.hidden_for(1), 2);
        assert_eq!(s.hidden_for(3), 8);
        let s: ModelSpec = "attention=se,reduction=32".parse().unwrap();
        assert_eq!(s.hidden_for(1), 1);
        let s: ModelSpec = "attention=se,reduction=3".parse().unwrap();
        assert_eq!(s.hidden_for(1), 10);
    }

    #[test]
    fn canonical_drops_unused_keys() {
        let a: ModelSpec = "attention=none,reduction=4".parse().unwrap();
        assert_eq!(a.canonical(), ModelSpec::default());
        let b: ModelSpec = "attention=spatial,reduction=4,squeeze=max".parse().unwrap();
        assert_eq!(b.canonical().to_string(), "attention=spatial");
    }
}
