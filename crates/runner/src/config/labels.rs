//! Variant labels: the swept keys and values of a variant (`reduction=16 placement=post_relu`),
//! each key shortened to its last segment unless two swept keys share it.

use std::collections::HashMap;

use super::grid::{toml_inline, Axis, Grid};
use super::ids;

/// The label key of each swept key: its last segment, or the whole key when
/// two swept keys share their last segment.
pub(super) fn short_keys(grids: &[Grid]) -> HashMap<String, String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut all: Vec<&Axis> = Vec::new();
    for g in grids {
        for a in &g.axes {
            if !all.iter().any(|b| b.key == a.key) {
                all.push(a);
                *count.entry(a.path.last().expect("non-empty")).or_default() += 1;
            }
        }
    }
    all.into_iter()
        .map(|a| {
            let last = a.path.last().expect("non-empty");
            let short = if count[last.as_str()] > 1 {
                a.key.clone()
            } else {
                last.clone()
            };
            (a.key.clone(), short)
        })
        .collect()
}

/// The label of a combination: `key=value` for each swept key that has an effect.
pub(super) fn label(axes: &[(String, toml::Value)], short: &HashMap<String, String>) -> String {
    axes.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                short.get(k).map_or(k.as_str(), String::as_str),
                label_value(v)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as it appears in a variant label: strings bare, lists joined by `+`.
pub fn label_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(x) => ids::float(*x),
        toml::Value::Array(items) => items.iter().map(label_value).collect::<Vec<_>>().join("+"),
        other => toml_inline(other),
    }
}
