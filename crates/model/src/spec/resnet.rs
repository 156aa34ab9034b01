//! The ResNet keys of [`ModelSpec`] (`depth`, `shortcut`, `width`, `integration`): their
//! defaults and checks, which keys belong to which architecture, and the geometry both
//! architectures share (the channels of each block or stage, the channels each attention module
//! sees).
//!
//! The CIFAR ResNet is He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
//! Sec. 4.2: depth `6n + 2`, three stages of `n` units with 16, 32, 64 channels (times `width`).

use super::{Arch, Integration, ModelSpec, Placement, Shortcut, SpecError, BLOCK_CHANNELS};

/// The default depth (ResNet-20).
pub(super) const DEFAULT_DEPTH: u32 = 20;

/// Channels of a ResNet's three stages at `width = 1`.
pub const RESNET_STAGE_CHANNELS: [usize; 3] = [16, 32, 64];

/// The deepest ResNet accepted (He et al. trained ResNet-1202, n = 200).
pub const MAX_RESNET_DEPTH: u32 = 1202;

/// The widest multiplier accepted.
pub const MAX_RESNET_WIDTH: u32 = 16;

pub(super) fn is_default_depth(d: &u32) -> bool {
    *d == DEFAULT_DEPTH
}
pub(super) fn is_default_shortcut(s: &Shortcut) -> bool {
    *s == Shortcut::A
}
pub(super) fn is_default_width(w: &u32) -> bool {
    *w == 1
}
pub(super) fn is_default_integration(i: &Integration) -> bool {
    *i == Integration::Standard
}

/// The TOML spelling of a unit enum value (`identity`, `b`, ...).
fn name<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::String(s)) => s,
        _ => format!("{value:?}"),
    }
}

impl ModelSpec {
    /// A ResNet's residual units per stage, `n = (depth - 2) / 6`.
    pub fn units_per_stage(&self) -> usize {
        (self.depth.saturating_sub(2) / 6) as usize
    }

    /// Output channels of each block (CNN: 32, 64, 128) or stage (ResNet: 16, 32, 64 times
    /// `width`).
    pub fn stage_channels(&self) -> [usize; 3] {
        match self.arch {
            Arch::SeedCnn => BLOCK_CHANNELS,
            Arch::Resnet => RESNET_STAGE_CHANNELS.map(|c| c * self.width as usize),
        }
    }

    /// The channels a ResNet unit's attention module sees: the unit's input channels with
    /// `pre` integration, its output channels otherwise. `stage` 1-based, `unit` 0-based.
    pub fn resnet_attention_channels(&self, stage: usize, unit: usize) -> usize {
        let out = self.stage_channels();
        if self.integration == Integration::Pre && unit == 0 && stage > 1 {
            out[stage - 2]
        } else {
            out[stage - 1]
        }
    }

    /// The channel counts of every attention module the model has.
    pub(super) fn attended_channels(&self) -> Vec<usize> {
        match self.arch {
            Arch::SeedCnn => self.blocks.iter().map(|i| BLOCK_CHANNELS[i - 1]).collect(),
            Arch::Resnet => self
                .blocks
                .iter()
                .flat_map(|s| {
                    (0..self.units_per_stage().max(1))
                        .map(move |u| self.resnet_attention_channels(s, u))
                })
                .collect(),
        }
    }

    /// The keys of the other architecture must keep their defaults; a ResNet's depth and width
    /// must be in range.
    pub(super) fn validate_arch(&self) -> Result<(), SpecError> {
        let d = ModelSpec::default();
        let other = |key: &'static str, applies_to: Arch, got: String| SpecError::OtherArch {
            key,
            applies_to: applies_to.as_str(),
            arch: self.arch.as_str(),
            got,
        };
        match self.arch {
            Arch::SeedCnn => {
                if self.depth != d.depth {
                    return Err(other("depth", Arch::Resnet, self.depth.to_string()));
                }
                if self.shortcut != d.shortcut {
                    return Err(other("shortcut", Arch::Resnet, name(&self.shortcut)));
                }
                if self.width != d.width {
                    return Err(other("width", Arch::Resnet, self.width.to_string()));
                }
                if self.integration != d.integration {
                    return Err(other("integration", Arch::Resnet, name(&self.integration)));
                }
            }
            Arch::Resnet => {
                if self.placement != Placement::default() {
                    return Err(other("placement", Arch::SeedCnn, name(&self.placement)));
                }
                // 0 says the same as the ResNet's lack of dropout; the default 0.5 is what the
                // key holds when it is not given.
                if self.dropout != 0.0 && self.dropout != d.dropout {
                    return Err(other("dropout", Arch::SeedCnn, self.dropout.to_string()));
                }
                if self.depth < 8
                    || !(self.depth - 2).is_multiple_of(6)
                    || self.depth > MAX_RESNET_DEPTH
                {
                    return Err(SpecError::Invalid {
                        key: "depth",
                        expected: format!(
                            "6n + 2 for some n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), at most {MAX_RESNET_DEPTH}"
                        ),
                        got: self.depth.to_string(),
                    });
                }
                if !(1..=MAX_RESNET_WIDTH).contains(&self.width) {
                    return Err(SpecError::Invalid {
                        key: "width",
                        expected: format!("between 1 and {MAX_RESNET_WIDTH}"),
                        got: self.width.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AttentionKind, BlockSet};

    fn resnet(text: &str) -> Result<ModelSpec, SpecError> {
        format!("arch=resnet,{text}").parse()
    }

    #[test]
    fn resnet_keys_parse_and_round_trip() {
        let s = resnet("depth=56,shortcut=b,width=2,attention=se,integration=identity").unwrap();
        assert_eq!(s.arch, Arch::Resnet);
        assert_eq!(s.depth, 56);
        assert_eq!(s.shortcut, Shortcut::B);
        assert_eq!(s.width, 2);
        assert_eq!(s.integration, Integration::Identity);
        assert_eq!(s.units_per_stage(), 9);
        assert_eq!(s.stage_channels(), [32, 64, 128]);
        assert_eq!(
            s.to_string(),
            "arch=resnet,depth=56,shortcut=b,width=2,attention=se,integration=identity"
        );
        assert_eq!(s.to_string().parse::<ModelSpec>().unwrap(), s);
        let t: ModelSpec = toml::from_str(
            "arch = \"resnet\"\ndepth = 110\nintegration = \"pre\"\nblocks = [2, 3]",
        )
        .unwrap();
        assert_eq!((t.depth, t.integration), (110, Integration::Pre));
        assert_eq!(t.blocks, BlockSet::new(&[2, 3]).unwrap());
        // `cnn` is another name of the seed CNN
        assert_eq!(
            "arch=cnn".parse::<ModelSpec>().unwrap(),
            ModelSpec::default()
        );
    }

    #[test]
    fn resnet_ranges_name_the_key() {
        for bad in ["depth=21", "depth=2", "depth=1208", "depth=0"] {
            let e = resnet(bad).unwrap_err().to_string();
            assert!(e.starts_with("model.depth must be 6n + 2"), "{bad}: {e}");
        }
        for ok in [
            "depth=8",
            "depth=20",
            "depth=32",
            "depth=44",
            "depth=110",
            "depth=1202",
        ] {
            resnet(ok).unwrap();
        }
        let e = resnet("width=0").unwrap_err().to_string();
        assert_eq!(e, "model.width must be between 1 and 16, got 0");
        let e = resnet("shortcut=c").unwrap_err().to_string();
        assert!(e.contains("unknown variant `c`"), "{e}");
        let e = resnet("integration=after").unwrap_err().to_string();
        assert!(
            e.contains("unknown variant `after`") && e.contains("identity"),
            "{e}"
        );
    }

    #[test]
    fn keys_of_the_other_architecture_are_errors() {
        let e = "depth=56".parse::<ModelSpec>().unwrap_err().to_string();
        assert_eq!(
            e,
            "model.depth applies to arch = \"resnet\" only (this model is arch = \"seed_cnn\"), got 56"
        );
        let e = "attention=se,integration=pre"
            .parse::<ModelSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("model.integration applies to arch = \"resnet\""),
            "{e}"
        );
        assert!("shortcut=b".parse::<ModelSpec>().is_err());
        assert!("width=2".parse::<ModelSpec>().is_err());
        let e = resnet("attention=se,placement=post_bn")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("model.placement applies to arch = \"seed_cnn\""),
            "{e}"
        );
        let e = resnet("dropout=0.3").unwrap_err().to_string();
        assert!(
            e.starts_with("model.dropout applies to arch = \"seed_cnn\""),
            "{e}"
        );
        // no dropout is what the ResNet has
        resnet("dropout=0").unwrap();
    }

    #[test]
    fn attention_channels_follow_the_integration() {
        let s = resnet("attention=se,integration=pre,blocks=2+3").unwrap();
        // stage 2's first unit sees stage 1's 16 channels before it
        assert_eq!(s.resnet_attention_channels(2, 0), 16);
        assert_eq!(s.resnet_attention_channels(2, 1), 32);
        assert_eq!(s.attended_channels().into_iter().min(), Some(16));
        let s = resnet("attention=se,integration=identity,blocks=2+3").unwrap();
        assert_eq!(s.resnet_attention_channels(2, 0), 32);
        // the reduction's bound is the fewest channels a module sees
        let e = resnet("attention=se,reduction=32,blocks=2+3,integration=pre")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "model.reduction must be between 1 and 16 (the fewest channels an attention module sees), got 32"
        );
        resnet("attention=se,reduction=32,blocks=2+3").unwrap();
        resnet("attention=eca,eca_kernel=15,width=1").unwrap();
    }

    #[test]
    fn canonical_resets_what_the_resnet_lacks() {
        let a = resnet("attention=none,dropout=0").unwrap();
        let b = resnet("attention=none").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let c = resnet("depth=56,attention=none,integration=post,reduction=4").unwrap();
        let c = c.canonical();
        assert_eq!(
            (c.depth, c.integration, c.attention),
            (56, Integration::Standard, AttentionKind::None)
        );
        // serialized without the ResNet keys at their defaults, so the CNN's table is unchanged
        let text = toml::to_string(&ModelSpec::default()).unwrap();
        assert!(
            !text.contains("depth") && !text.contains("integration"),
            "{text}"
        );
    }
}
