//! Pass 3a: the `[[grid]]` entries of an experiment file read into [`Grid`]s of swept keys
//! ([`Axis`]), each key located in the file for errors.
//!
//! Inside one grid the axes combine as a cartesian product, in the order they are written (the
//! last axis varies fastest; see [`super::expand`]).

use super::errors::{ConfigError, Location};
use super::overrides::Override;
use super::raw::RawDoc;

/// The tables a grid key may sweep.
pub const SECTIONS: [&str; 3] = ["data", "model", "train"];

/// One swept key of a grid and its values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The key as written, e.g. `model.reduction`.
    pub key: String,
    /// Its segments, e.g. `["model", "reduction"]`.
    pub path: Vec<String>,
    /// The values, in the order written (at least one).
    pub values: Vec<toml::Value>,
}

/// One `[[grid]]` entry.
#[derive(Debug, Clone)]
pub struct Grid {
    /// 0-based position among the file's `[[grid]]` entries.
    pub index: usize,
    /// The axes, in the order written.
    pub axes: Vec<Axis>,
}

impl Grid {
    /// The number of combinations (1 for an empty grid).
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    /// Whether this grid has no axis (it is then the base, once).
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }
}

/// The most trials an experiment may plan (combinations of all grids x seeds, counted before
/// the grids are expanded or duplicates merged). Ten times the largest sweep benchmarked
/// (`benches/expand.rs`): a bigger plan is a typo (an axis pasted twice, a seed range), and
/// expanding it would exhaust the memory first.
pub const MAX_TRIALS: u64 = 100_000;

/// Refuses, before anything is expanded, an experiment whose grids and seeds plan more than
/// [`MAX_TRIALS`] trials, naming the largest grid.
pub fn check_size(grids: &[Grid], seeds: usize, raw: &RawDoc) -> Result<(), ConfigError> {
    let combos = |g: &Grid| {
        g.axes
            .iter()
            .fold(1u128, |n, a| n.saturating_mul(a.values.len() as u128))
    };
    let total = grids
        .iter()
        .map(combos)
        .fold(0u128, u128::saturating_add)
        .max(1)
        .saturating_mul(seeds as u128);
    if total <= u128::from(MAX_TRIALS) {
        return Ok(());
    }
    let (location, key) = match grids.iter().max_by_key(|g| combos(g)) {
        Some(g) if combos(g) > 1 => (
            raw.locate(&["grid".to_string(), g.index.to_string()], false),
            "grid".to_string(),
        ),
        _ => (
            raw.locate(&["seeds".to_string()], false),
            "seeds".to_string(),
        ),
    };
    let per_grid: Vec<String> = grids.iter().map(|g| combos(g).to_string()).collect();
    Err(ConfigError::InvalidValue {
        location,
        key,
        message: format!(
            "the experiment plans {total} trials ({} combination{} x {seeds} seed{}), more than \
             the limit of {MAX_TRIALS}; split it into several experiments or sweep fewer values",
            if per_grid.is_empty() {
                "1".to_string()
            } else {
                per_grid.join(" + ")
            },
            if total / (seeds.max(1) as u128) == 1 {
                ""
            } else {
                "s"
            },
            if seeds == 1 { "" } else { "s" },
        ),
    })
}

/// Reads the `grid` value of the file: an array of tables whose keys are
/// dotted paths into `data`, `model` or `train` and whose values are non-empty
/// arrays. Axes pinned by a `--set` of the same key (or of a table above it)
/// are dropped: the override wins.
pub fn parse_grids(
    grid: Option<&toml::Value>,
    raw: &RawDoc,
    overrides: &[Override],
) -> Result<Vec<Grid>, ConfigError> {
    let Some(grid) = grid else {
        return Ok(Vec::new());
    };
    let invalid = |path: &[String], message: String| ConfigError::InvalidValue {
        location: raw.locate(path, false),
        key: "grid".to_string(),
        message,
    };
    let entries = grid.as_array().ok_or_else(|| {
        invalid(
            &["grid".to_string()],
            "expected `[[grid]]` tables of `\"table.key\" = [values]`".to_string(),
        )
    })?;
    let mut grids = Vec::with_capacity(entries.len());
    for (g, entry) in entries.iter().enumerate() {
        let entry_path = vec!["grid".to_string(), g.to_string()];
        let table = entry.as_table().ok_or_else(|| {
            invalid(
                &entry_path,
                "each grid entry must be a table (`[[grid]]`)".to_string(),
            )
        })?;
        // File order: by the position of the key in the text.
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort_by_key(|k| {
            let mut p = entry_path.clone();
            p.push((*k).clone());
            raw.spans(&p).map_or(usize::MAX, |s| s.key.start)
        });
        let mut axes = Vec::with_capacity(keys.len());
        for key in keys {
            let mut key_path = entry_path.clone();
            key_path.push(key.clone());
            let axis = parse_axis(key, &table[key], raw.locate(&key_path, false))?;
            let pinned = overrides.iter().any(|o| axis.path.starts_with(&o.key));
            if !pinned {
                axes.push(axis);
            }
        }
        grids.push(Grid { index: g, axes });
    }
    Ok(grids)
}

/// One swept key of a grid entry and its values (`location`: where the key is written).
fn parse_axis(key: &str, value: &toml::Value, location: Location) -> Result<Axis, ConfigError> {
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(ConfigError::InvalidValue {
            location,
            key: key.to_string(),
            message: "a grid key is a dotted path to one value, e.g. \"model.reduction\""
                .to_string(),
        });
    }
    if !SECTIONS.contains(&path[0].as_str()) {
        let suggestion = super::suggest::closest(&path[0], SECTIONS).map(str::to_string);
        return Err(ConfigError::UnknownKey {
            location,
            key: key.to_string(),
            suggestion: suggestion.map(|s| format!("{s}.{}", path[1..].join("."))),
            expected: SECTIONS.iter().map(|s| format!("{s}.*")).collect(),
        });
    }
    let values = match value {
        toml::Value::Array(v) if v.is_empty() => {
            return Err(ConfigError::EmptyAxis {
                location,
                key: key.to_string(),
            })
        }
        toml::Value::Array(v) => v.clone(),
        other => {
            return Err(ConfigError::InvalidValue {
                location,
                key: key.to_string(),
                message: format!(
                    "a grid axis is an array of values (e.g. [{}]), found {}",
                    toml_inline(other),
                    super::de::describe(other)
                ),
            })
        }
    };
    Ok(Axis {
        key: key.to_string(),
        path,
        values,
    })
}

/// A value as inline TOML.
pub(super) fn toml_inline(v: &toml::Value) -> String {
    let mut s = String::new();
    super::ids::write_value(v, &mut s);
    s
}
