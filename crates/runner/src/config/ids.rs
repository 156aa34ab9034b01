//! Stable trial ids: a hash of the canonical form of a resolved configuration.
//!
//! The canonical form is one `dotted.key=value` line per leaf value, sorted by
//! key, with numbers in a fixed notation (integers in decimal; floats in Rust's
//! shortest round-trip notation, `-0.0` as `0.0`) and strings JSON-escaped. It
//! does not depend on the order keys are written in, on the TOML library's map
//! type, on the platform or on the run.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// The number of hex characters of an id.
pub const ID_LEN: usize = 12;

/// A trial's id: 12 lowercase hex characters of the SHA-256 of the canonical
/// resolved configuration followed by the seed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrialId(String);

impl TrialId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the configuration whose canonical form is `canonical`, with `seed`.
    pub fn new(canonical: &str, seed: u64) -> Self {
        let mut h = Sha256::new();
        h.update(canonical.as_bytes());
        TrialId::from_hasher(h, seed)
    }

    /// The id from a hasher that has already taken the canonical text (so
    /// the text is hashed once for all the seeds of a variant).
    pub fn from_hasher(mut hasher: Sha256, seed: u64) -> Self {
        hasher.update(b"seed=");
        hasher.update(seed.to_string().as_bytes());
        TrialId(hex_prefix(&hasher.finalize()))
    }
}

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An id that is not 12 lowercase hex characters.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a trial id (12 lowercase hex characters)")]
pub struct BadId(pub String);

impl FromStr for TrialId {
    type Err = BadId;

    fn from_str(s: &str) -> Result<Self, BadId> {
        if is_id(s) {
            Ok(TrialId(s.to_string()))
        } else {
            Err(BadId(s.to_string()))
        }
    }
}

impl Serialize for TrialId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrialId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `s` has the shape of an id.
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The variant id of a canonical configuration: the hash without a seed.
pub fn variant_id(canonical: &str) -> String {
    hash_hex(&[canonical.as_bytes()])
}

fn hash_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex_prefix(&h.finalize())
}

fn hex_prefix(digest: &[u8]) -> String {
    let mut out = String::with_capacity(ID_LEN);
    for b in digest.iter().take(ID_LEN / 2) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The canonical text of a TOML table (see the module docs).
pub fn canonical(table: &toml::Table) -> String {
    let mut out = String::with_capacity(64 * table.len());
    let mut prefix = String::new();
    write_table_lines(table, &mut prefix, &mut out);
    out
}

/// The canonical lines of `value` under the top-level key `name` (the same
/// text as [`canonical`] of a table holding only that key).
pub fn canonical_under(name: &str, value: &toml::Value) -> String {
    let mut out = String::with_capacity(1024);
    let mut prefix = String::new();
    push_json_str(name, &mut prefix);
    match value {
        toml::Value::Table(t) if !t.is_empty() => write_table_lines(t, &mut prefix, &mut out),
        other => {
            out.push_str(&prefix);
            out.push('=');
            write_value(other, &mut out);
            out.push('\n');
        }
    }
    out
}

/// One line per leaf, keys sorted at every level: the same order as sorting
/// the lines, since a quoted key segment sorts before any longer key.
fn write_table_lines(table: &toml::Table, prefix: &mut String, out: &mut String) {
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort_unstable();
    for k in keys {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        push_json_str(k, prefix);
        match &table[k] {
            toml::Value::Table(t) if !t.is_empty() => write_table_lines(t, prefix, out),
            other => {
                out.push_str(prefix);
                out.push('=');
                write_value(other, out);
                out.push('\n');
            }
        }
        prefix.truncate(len);
    }
}

/// Writes a value in canonical notation (tables with sorted keys).
pub fn write_value(v: &toml::Value, out: &mut String) {
    match v {
        toml::Value::String(s) => push_json_str(s, out),
        toml::Value::Integer(i) => out.push_str(&i.to_string()),
        toml::Value::Float(x) => out.push_str(&float(*x)),
        toml::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        toml::Value::Datetime(d) => out.push_str(&d.to_string()),
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        toml::Value::Table(t) => {
            let mut keys: Vec<&String> = t.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(k, out);
                out.push('=');
                write_value(&t[k], out);
            }
            out.push('}');
        }
    }
}

/// A float in a fixed, platform-independent notation.
pub fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x == 0.0 {
        "0.0".to_string()
    } else {
        // Rust's `Debug` for f64 is the shortest representation that
        // round-trips, computed by Rust itself (not libc): the same everywhere.
        format!("{x:?}")
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(s: &str, out: &mut String) {
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        || s.is_empty()
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> toml::Table {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn canonical_ignores_key_order_and_layout() {
        let a = t("[train]\nlr = 0.001\nepochs = 3\n[model]\nblocks = [1, 2]\n");
        let b = t("model.blocks = [ 1,2 ]\ntrain = { epochs = 3, lr = 1e-3 }\n");
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            "\"model\".\"blocks\"=[1,2]\n\"train\".\"epochs\"=3\n\"train\".\"lr\"=0.001\n"
        );
    }

    #[test]
    fn canonical_distinguishes_values_and_types() {
        let base = canonical(&t("x = 1"));
        assert_ne!(base, canonical(&t("x = 1.0")));
        assert_ne!(base, canonical(&t("x = '1'")));
        assert_ne!(base, canonical(&t("x = 2")));
        assert_eq!(canonical(&t("x = -0.0")), canonical(&t("x = 0.0")));
    }

    #[test]
    fn float_notation() {
        assert_eq!(float(50.0), "50.0");
        assert_eq!(float(1e-3), "0.001");
        assert_eq!(float(1e-5), "1e-5");
        assert_eq!(float(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn ids_are_fixed_hex_and_depend_on_seed() {
        let c = canonical(&t("a = 1"));
        let id0 = TrialId::new(&c, 0);
        let id1 = TrialId::new(&c, 1);
        assert!(is_id(id0.as_str()) && is_id(id1.as_str()));
        assert_ne!(id0, id1);
        assert_ne!(id0.as_str(), variant_id(&c));
        // Pinned: the ids of this canonical text must never change
        // (`printf '"a"=1\nseed=0' | sha256sum`).
        assert_eq!(c, "\"a\"=1\n");
        assert_eq!(variant_id(&c), "1a92b803768d");
        assert_eq!(id0.as_str(), "2b4761c2b629");
        assert_eq!(id0.as_str().len(), 12);
        assert!("0123456789ab".parse::<TrialId>().is_ok());
        assert!("0123456789AB".parse::<TrialId>().is_err());
        assert!("0123".parse::<TrialId>().is_err());
    }
}
