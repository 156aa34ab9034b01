//! The SPEC string, the one-line form of a [`ModelSpec`] (`attention=se,reduction=8,blocks=1+3`):
//! non-default keys written out, parsed back through the same serde path as the TOML table.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{ModelSpec, SpecError};

impl ModelSpec {
    /// The `key=value` pairs that differ from the defaults (always including `attention`;
    /// `arch` and the ResNet's `depth`, `shortcut`, `width` before it), in the SPEC-string
    /// syntax; `to_string()` joins them with commas.
    pub fn spec_pairs(&self) -> Vec<(&'static str, String)> {
        let d = ModelSpec::default();
        let mut v = Vec::new();
        if self.arch != d.arch {
            v.push(("arch", toml_name(&self.arch)));
        }
        if self.depth != d.depth {
            v.push(("depth", self.depth.to_string()));
        }
        if self.shortcut != d.shortcut {
            v.push(("shortcut", toml_name(&self.shortcut)));
        }
        if self.width != d.width {
            v.push(("width", self.width.to_string()));
        }
        v.push(("attention", self.attention.as_str().to_string()));
        if self.integration != d.integration {
            v.push(("integration", toml_name(&self.integration)));
        }
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
    /// after the architecture's keys (e.g. `attention=se,reduction=8,blocks=1+3`,
    /// `arch=resnet,depth=56,attention=se,integration=pre`). Parses back to an equal spec.
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
