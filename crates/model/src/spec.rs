//! `ModelSpec`: the `[model]` table of an experiment, and its one-line form.
//!
//! The TOML table and the command-line SPEC string (`attention=se,reduction=8,blocks=1+3`,
//! see `docs/models.md`) have the same keys and the same defaults; both go through serde, so
//! an unknown key or value is reported the same way.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Channel widths of the seed CNN's three blocks.
pub const BLOCK_CHANNELS: [usize; 3] = [32, 64, 128];

/// Side of the (square) feature map entering block 1..3 (CIFAR input 32x32, halved by each pool).
pub const BLOCK_INPUT_SIDE: [usize; 3] = [32, 16, 8];

/// Largest spatial-attention kernel accepted (odd).
pub const MAX_SPATIAL_KERNEL: u32 = 15;

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

/// A non-empty subset of the blocks {1, 2, 3}.
///
/// TOML: a list `[1, 3]`; also accepted as a string `"1+3"` (the SPEC-string form).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockSet(u8);

impl BlockSet {
    /// All three blocks.
    pub const ALL: BlockSet = BlockSet(0b111);

    /// The set of the given block numbers; `None` if empty or a number is not 1, 2 or 3.
    pub fn new(blocks: &[u32]) -> Option<BlockSet> {
        let mut bits = 0u8;
        for &b in blocks {
            if !(1..=3).contains(&b) {
                return None;
            }
            bits |= 1 << (b - 1);
        }
        (bits != 0).then_some(BlockSet(bits))
    }

    /// Whether block `i` (1-based) is in the set.
    pub fn contains(self, i: usize) -> bool {
        (1..=3).contains(&i) && self.0 & (1 << (i - 1)) != 0
    }

    /// The block numbers, ascending.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (1..=3).filter(move |&i| self.contains(i))
    }

    fn parse_plus(s: &str) -> Result<BlockSet, String> {
        let mut nums = Vec::new();
        for part in s.split('+') {
            let part = part.trim();
            match part.parse::<u32>() {
                Ok(n) if (1..=3).contains(&n) => nums.push(n),
                _ => {
                    return Err(format!(
                        "invalid block `{part}` in `{s}`: blocks are 1, 2 or 3, joined by `+` (e.g. `1+3`)"
                    ))
                }
            }
        }
        BlockSet::new(&nums).ok_or_else(|| format!("empty block set `{s}`"))
    }
}

impl Default for BlockSet {
    fn default() -> Self {
        BlockSet::ALL
    }
}

impl fmt::Debug for BlockSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for BlockSet {
    /// The SPEC-string form, e.g. `1+3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|i| i.to_string()).collect();
        f.write_str(&parts.join("+"))
    }
}

impl Serialize for BlockSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.iter().count()))?;
        for i in self.iter() {
            seq.serialize_element(&(i as u32))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for BlockSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BlockSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-empty list of blocks among 1, 2, 3 (e.g. [1, 3]) or a string like \"1+3\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BlockSet, E> {
                BlockSet::parse_plus(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BlockSet, E> {
                match u32::try_from(v).ok().and_then(|n| BlockSet::new(&[n])) {
                    Some(b) => Ok(b),
                    None => Err(E::custom(format!(
                        "invalid block {v}: blocks are 1, 2 or 3"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BlockSet, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BlockSet, A::Error> {
                let mut nums = Vec::new();
                while let Some(n) = seq.next_element::<i64>()? {
                    match u32::try_from(n) {
                        Ok(n) if (1..=3).contains(&n) => {
                            if nums.contains(&n) {
                                return Err(de::Error::custom(format!("block {n} listed twice")));
                            }
                            nums.push(n)
                        }
                        _ => {
                            return Err(de::Error::custom(format!(
                                "invalid block {n}: blocks are 1, 2 or 3"
                            )))
                        }
                    }
                }
                BlockSet::new(&nums).ok_or_else(|| {
                    de::Error::custom("the block list is empty: give at least one of 1, 2, 3")
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// The `[model]` table of an experiment TOML (all keys optional; defaults are the seed CNN's
/// settings, with `attention = "none"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSpec {
    /// Network family.
    pub arch: Arch,
    /// Attention module inserted in the attended blocks.
    pub attention: AttentionKind,
    /// Reduction ratio r of the channel MLP (SE, CBAM): hidden width `max(1, C / r)` exactly.
    pub reduction: u32,
    /// Where in the block the attention module sits.
    pub placement: Placement,
    /// Which blocks get an attention module.
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
    /// Dropout probability before the last linear layer.
    pub dropout: f32,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            arch: Arch::SeedCnn,
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
    /// The channel counts of the attended blocks.
    fn attended_channels(&self) -> impl Iterator<Item = usize> + '_ {
        self.blocks.iter().map(|i| BLOCK_CHANNELS[i - 1])
    }

    /// ECA kernel size used in block `i` (1-based).
    pub fn eca_kernel_for(&self, block: usize) -> usize {
        match self.eca_kernel {
            Some(k) => k as usize,
            None => eca_adaptive_kernel(BLOCK_CHANNELS[block - 1]),
        }
    }

    /// Hidden width of the channel MLP in block `i` (1-based): `max(1, C / r)`.
    pub fn hidden_for(&self, block: usize) -> usize {
        (BLOCK_CHANNELS[block - 1] / self.reduction.max(1) as usize).max(1)
    }

    /// Checks every range constraint; the error names the key.
    pub fn validate(&self) -> Result<(), SpecError> {
        let narrowest = self.attended_channels().min().unwrap_or(BLOCK_CHANNELS[0]);
        if self.attention.uses_reduction() && !(1..=narrowest as u32).contains(&self.reduction) {
            return Err(SpecError::Invalid {
                key: "reduction",
                expected: format!(
                    "between 1 and {narrowest} (the narrowest attended block's channels)"
                ),
                got: self.reduction.to_string(),
            });
        }
        if self.attention == AttentionKind::Eca {
            if let Some(k) = self.eca_kernel {
                if k % 2 == 0 || k as usize > narrowest {
                    return Err(SpecError::Invalid {
                        key: "eca_kernel",
                        expected: format!(
                            "odd and between 1 and {narrowest} (the narrowest attended block's channels)"
                        ),
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
        if s.attention == AttentionKind::None {
            return ModelSpec {
                arch: s.arch,
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

    /// The `key=value` pairs that differ from the defaults (always including `attention`),
    /// in the SPEC-string syntax; `to_string()` joins them with commas.
    pub fn spec_pairs(&self) -> Vec<(&'static str, String)> {
        let d = ModelSpec::default();
        let mut v = Vec::new();
        if self.arch != d.arch {
            v.push(("arch", toml_name(&self.arch)));
        }
        v.push(("attention", self.attention.as_str().to_string()));
        if self.reduction != d.reduction {
            v.push(("reduction", self.reduction.to_string()));
        }
        if self.placement != d.placement {
            v.push(("placement", toml_name(&self.placement)));
        }
        if self.blocks != d.blocks {
            v.push(("blocks", self.blocks.to_string()));
        }
        if self.squeeze != d.squeeze {
            v.push(("squeeze", toml_name(&self.squeeze)));
        }
        if self.gate != d.gate {
            v.push(("gate", toml_name(&self.gate)));
        }
        if self.attention_bias != d.attention_bias {
            v.push(("attention_bias", self.attention_bias.to_string()));
        }
        if let Some(k) = self.eca_kernel {
            v.push(("eca_kernel", k.to_string()));
        }
        if self.spatial_kernel != d.spatial_kernel {
            v.push(("spatial_kernel", self.spatial_kernel.to_string()));
        }
        if self.dropout != d.dropout {
            v.push(("dropout", self.dropout.to_string()));
        }
        v
    }
}

/// The TOML spelling of a unit enum value (`post_relu`, ...).
fn toml_name<T: Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}

impl fmt::Display for ModelSpec {
    /// The SPEC string: non-default keys as `key=value`, comma-separated, `attention` first
    /// (e.g. `attention=se,reduction=8,blocks=1+3`). Parses back to an equal spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .spec_pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Keys whose SPEC-string values are floats even when written as integers.
const FLOAT_KEYS: &[&str] = &["dropout"];

impl FromStr for ModelSpec {
    type Err = SpecError;

    /// Parses `key=value,key=value` (keys of the `[model]` table, defaults filled in; lists as
    /// `blocks=1+3`; `eca_kernel=auto` for the adaptive size), then validates.
    fn from_str(s: &str) -> Result<ModelSpec, SpecError> {
        let mut table = toml::Table::new();
        let mut seen = std::collections::HashSet::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('=').ok_or_else(|| SpecError::Syntax {
                item: item.to_string(),
            })?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(SpecError::Syntax {
                    item: item.to_string(),
                });
            }
            if !seen.insert(key) {
                return Err(SpecError::Duplicate {
                    key: key.to_string(),
                });
            }
            if key == "eca_kernel" && value.eq_ignore_ascii_case("auto") {
                // the adaptive size is the default: leaving the key out selects it
                continue;
            }
            let v = if FLOAT_KEYS.contains(&key) {
                match value.parse::<f64>() {
                    Ok(x) => toml::Value::Float(x),
                    Err(_) => toml::Value::String(value.to_string()),
                }
            } else if let Ok(i) = value.parse::<i64>() {
                toml::Value::Integer(i)
            } else if let Ok(b) = value.parse::<bool>() {
                toml::Value::Boolean(b)
            } else {
                toml::Value::String(value.to_string())
            };
            table.insert(key.to_string(), v);
        }
        let spec: ModelSpec =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| SpecError::Parse {
                    spec: s.to_string(),
                    message: e.message().trim().to_string(),
                })?;
        spec.validate()?;
        Ok(spec)
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
