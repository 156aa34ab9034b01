//! [`BlockSet`]: the blocks an attention module is inserted in, a non-empty subset of {1, 2, 3},
//! written as a TOML list or as `1+3` in the SPEC string.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

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
