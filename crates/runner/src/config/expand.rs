//! Pass 3: `[[grid]]` entries expanded into variants (resolved configurations).
//!
//! Inside one grid the axes combine as a cartesian product, in the order they
//! are written (the last axis varies fastest); the variants of all grids are
//! unioned in grid order, and a configuration already produced (by an earlier
//! grid or combination) is dropped. An empty `[[grid]]` contributes the base
//! configuration as is; a file with no grid at all is the base alone.

use std::collections::HashMap;

use rayon::prelude::*;

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;

use super::errors::{ConfigError, Location};
use super::experiment::{ResolvedConfig, Variant};
use super::ids;
use super::overrides::Override;
use super::raw::RawDoc;
use super::sections::{self, canonical_section, Locate, Section};

/// The tables a grid key may sweep.
pub const SECTIONS: [&str; 3] = ["data", "model", "train"];

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
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            let location = raw.locate(&key_path, false);
            if path.len() < 2 || path.iter().any(String::is_empty) {
                return Err(ConfigError::InvalidValue {
                    location,
                    key: key.clone(),
                    message: "a grid key is a dotted path to one value, e.g. \"model.reduction\""
                        .to_string(),
                });
            }
            if !SECTIONS.contains(&path[0].as_str()) {
                let suggestion = super::suggest::closest(&path[0], SECTIONS).map(str::to_string);
                return Err(ConfigError::UnknownKey {
                    location,
                    key: key.clone(),
                    suggestion: suggestion.map(|s| format!("{s}.{}", path[1..].join("."))),
                    expected: SECTIONS.iter().map(|s| format!("{s}.*")).collect(),
                });
            }
            let values = match &table[key] {
                toml::Value::Array(v) if v.is_empty() => {
                    return Err(ConfigError::EmptyAxis {
                        location,
                        key: key.clone(),
                    })
                }
                toml::Value::Array(v) => v.clone(),
                other => {
                    return Err(ConfigError::InvalidValue {
                        location,
                        key: key.clone(),
                        message: format!(
                            "a grid axis is an array of values (e.g. [{}]), found {}",
                            toml_inline(other),
                            super::de::describe(other)
                        ),
                    })
                }
            };
            let pinned = overrides.iter().any(|o| path.starts_with(&o.key));
            if !pinned {
                axes.push(Axis {
                    key: key.clone(),
                    path,
                    values,
                });
            }
        }
        grids.push(Grid { index: g, axes });
    }
    Ok(grids)
}

fn toml_inline(v: &toml::Value) -> String {
    let mut s = String::new();
    super::ids::write_value(v, &mut s);
    s
}

/// The base configuration: typed, validated tables with their canonical text.
#[derive(Debug, Clone)]
pub struct Base {
    /// The tables as TOML (after `--set`).
    pub tables: [toml::Value; 3],
    /// The typed data table.
    pub data: DataConfig,
    /// The typed model table, canonicalized.
    pub model: ModelSpec,
    /// The typed train table.
    pub train: TrainConfig,
    /// Canonical lines of each table.
    pub canonical: [String; 3],
}

impl Base {
    /// Validates the base tables.
    pub fn new(tables: [toml::Value; 3], at: &dyn Locate) -> Result<Base, ConfigError> {
        let data: DataConfig = sections::typed(&tables[0], at)?;
        let model: ModelSpec = sections::typed::<ModelSpec>(&tables[1], at)?.canonicalize();
        let train: TrainConfig = sections::typed(&tables[2], at)?;
        sections::check_across(&data, &train, at)?;
        let canonical = [
            canonical_section(&data),
            canonical_section(&model),
            canonical_section(&train),
        ];
        Ok(Base {
            tables,
            data,
            model,
            train,
            canonical,
        })
    }

    /// The whole canonical text.
    pub fn canonical_text(&self) -> String {
        self.canonical.concat()
    }

    /// As a resolved configuration.
    pub fn config(&self) -> ResolvedConfig {
        ResolvedConfig {
            data: self.data.clone(),
            model: self.model.clone(),
            train: self.train.clone(),
        }
    }
}

/// Locates keys of one combination of one grid: `--set` first, then the
/// grid's value, then the base in the file.
struct ComboLocator<'a> {
    raw: &'a RawDoc,
    overrides: &'a [Override],
    grid: Option<(&'a Grid, &'a [usize])>,
}

impl Locate for ComboLocator<'_> {
    fn locate(&self, path: &[String]) -> Location {
        if let Some(o) = self
            .overrides
            .iter()
            .rev()
            .find(|o| path.starts_with(&o.key))
        {
            return Location::Override {
                text: o.text.clone(),
            };
        }
        if let Some((grid, choice)) = self.grid {
            for (axis, &i) in grid.axes.iter().zip(choice) {
                if path.starts_with(&axis.path) {
                    let mut p = vec![
                        "grid".to_string(),
                        grid.index.to_string(),
                        axis.key.clone(),
                        i.to_string(),
                    ];
                    p.extend(path[axis.path.len()..].iter().cloned());
                    return self.raw.locate(&p, true);
                }
            }
        }
        self.raw.locate(path, false)
    }
}

/// A locator for the base (no grid).
pub fn base_locator<'a>(raw: &'a RawDoc, overrides: &'a [Override]) -> impl Locate + 'a {
    ComboLocator {
        raw,
        overrides,
        grid: None,
    }
}

/// Expands the grids over the base into distinct variants.
pub fn expand(
    base: &Base,
    grids: &[Grid],
    raw: &RawDoc,
    overrides: &[Override],
) -> Result<Vec<Variant>, ConfigError> {
    let base_canonical = base.canonical_text();
    if grids.is_empty() {
        return Ok(vec![variant_of(
            base.config(),
            base_canonical.clone(),
            &base_canonical,
            String::new(),
        )]);
    }
    let label_keys = short_keys(grids);
    // Every combination, in order; resolved in parallel (each is validated,
    // serialized and hashed), then merged in order.
    let mut combos: Vec<(&Grid, Vec<usize>)> = Vec::new();
    for grid in grids {
        let mut choice = vec![0usize; grid.axes.len()];
        loop {
            combos.push((grid, choice.clone()));
            if !advance(&mut choice, grid) {
                break;
            }
        }
    }
    let resolved: Vec<Result<Resolved, ConfigError>> = combos
        .par_iter()
        .map(|(grid, choice)| {
            let at = ComboLocator {
                raw,
                overrides,
                grid: Some((*grid, choice.as_slice())),
            };
            resolve(base, grid, choice, &at, &label_keys)
        })
        .collect();
    // variant id -> index in `variants`; equal ids are compared by their
    // canonical text, so a (never seen) 48-bit collision is an error, not a merge.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut variants: Vec<Variant> = Vec::new();
    for (r, (grid, _)) in resolved.into_iter().zip(&combos) {
        let r = r?;
        match seen.get(&r.variant_id) {
            Some(&i) if variants[i].canonical == r.canonical => {} // a duplicate
            Some(&i) => {
                return Err(ConfigError::InvalidValue {
                    location: raw.locate(&["grid".to_string(), grid.index.to_string()], false),
                    key: "grid".to_string(),
                    message: format!(
                        "two different variants have the same id {} (`{}` and `{}`); change a value slightly",
                        r.variant_id, variants[i].label, r.label
                    ),
                })
            }
            None => {
                seen.insert(r.variant_id.clone(), variants.len());
                let label = if r.canonical == base_canonical || r.label.is_empty() {
                    "baseline".to_string()
                } else {
                    r.label
                };
                variants.push(Variant {
                    variant_id: r.variant_id,
                    label,
                    axes: r.axes,
                    config: r.config,
                    canonical: r.canonical,
                });
            }
        }
    }
    Ok(variants)
}

/// Odometer step: the last axis fastest. False when done.
fn advance(choice: &mut [usize], grid: &Grid) -> bool {
    for i in (0..choice.len()).rev() {
        choice[i] += 1;
        if choice[i] < grid.axes[i].values.len() {
            return true;
        }
        choice[i] = 0;
    }
    false
}

/// One combination, resolved.
struct Resolved {
    config: ResolvedConfig,
    canonical: String,
    variant_id: String,
    axes: Vec<(String, toml::Value)>,
    label: String,
}

/// The configuration of one combination with its canonical text, id, swept
/// values and label.
fn resolve(
    base: &Base,
    grid: &Grid,
    choice: &[usize],
    at: &dyn Locate,
    label_keys: &HashMap<String, String>,
) -> Result<Resolved, ConfigError> {
    let mut tables: [Option<toml::Value>; 3] = [None, None, None];
    for (axis, &i) in grid.axes.iter().zip(choice) {
        let s = section_index(&axis.path[0]);
        let table = tables[s].get_or_insert_with(|| base.tables[s].clone());
        set_path(
            table,
            &axis.path[1..],
            axis.values[i].clone(),
            &axis.key,
            at,
        )?;
    }
    // The typed tables as TOML again (defaults filled in, model canonical).
    let mut values: [Option<toml::Value>; 3] = [None, None, None];
    let mut canonical = base.canonical.clone();
    let data = match &tables[0] {
        Some(t) => {
            let d: DataConfig = sections::typed(t, at)?;
            let v = sections::to_value(&d);
            canonical[0] = ids::canonical_under(SECTIONS[0], &v);
            values[0] = Some(v);
            d
        }
        None => base.data.clone(),
    };
    let mut requested_model = None;
    let model = match &tables[1] {
        Some(t) => {
            let m: ModelSpec = sections::typed(t, at)?;
            requested_model = Some(sections::to_value(&m));
            let c = m.canonicalize();
            let v = sections::to_value(&c);
            canonical[1] = ids::canonical_under(SECTIONS[1], &v);
            values[1] = Some(v);
            c
        }
        None => base.model.clone(),
    };
    let train = match &tables[2] {
        Some(t) => {
            let tr: TrainConfig = sections::typed(t, at)?;
            let v = sections::to_value(&tr);
            canonical[2] = ids::canonical_under(SECTIONS[2], &v);
            values[2] = Some(v);
            tr
        }
        None => base.train.clone(),
    };
    sections::check_across(&data, &train, at)?;
    let axes = axes_of(grid, &values, requested_model.as_ref());
    let label = label(&axes, label_keys);
    let canonical = canonical.concat();
    Ok(Resolved {
        config: ResolvedConfig { data, model, train },
        variant_id: ids::variant_id(&canonical),
        canonical,
        axes,
        label,
    })
}

fn section_index(name: &str) -> usize {
    SECTIONS
        .iter()
        .position(|s| *s == name)
        .expect("grid keys are checked to start with a table name")
}

fn set_path(
    table: &mut toml::Value,
    path: &[String],
    value: toml::Value,
    key: &str,
    at: &dyn Locate,
) -> Result<(), ConfigError> {
    let mut cur = table;
    let (last, parents) = path.split_last().expect("at least one segment");
    for seg in parents {
        let t = cur.as_table_mut().ok_or_else(|| not_a_table(key, at))?;
        cur = t
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    cur.as_table_mut()
        .ok_or_else(|| not_a_table(key, at))?
        .insert(last.clone(), value);
    Ok(())
}

fn not_a_table(key: &str, at: &dyn Locate) -> ConfigError {
    let path: Vec<String> = key.split('.').map(str::to_string).collect();
    ConfigError::InvalidValue {
        location: at.locate(&path),
        key: key.to_string(),
        message: "the grid key goes through a value that is not a table".to_string(),
    }
}

/// The swept keys of a combination and their typed values. Keys that have no
/// effect on the resolved model (e.g. `model.reduction` with `attention =
/// "none"`) are left out.
fn axes_of(
    grid: &Grid,
    values: &[Option<toml::Value>; 3],
    requested_model: Option<&toml::Value>,
) -> Vec<(String, toml::Value)> {
    let mut out = Vec::with_capacity(grid.axes.len());
    for axis in &grid.axes {
        let s = section_index(&axis.path[0]);
        let Some(value) = values[s]
            .as_ref()
            .and_then(|v| lookup_value(v, &axis.path[1..]))
        else {
            continue;
        };
        if s == 1 {
            if let Some(req) = requested_model {
                if lookup_value(req, &axis.path[1..]) != Some(value) {
                    continue; // reset by canonicalization: no effect
                }
            }
        }
        out.push((axis.key.clone(), value.clone()));
    }
    out
}

fn lookup_value<'a>(mut v: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    for seg in path {
        v = v.as_table()?.get(seg)?;
    }
    Some(v)
}

/// The label key of each swept key: its last segment, or the whole key when
/// two swept keys share their last segment.
fn short_keys(grids: &[Grid]) -> HashMap<String, String> {
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

fn label(axes: &[(String, toml::Value)], short: &HashMap<String, String>) -> String {
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

fn variant_of(
    config: ResolvedConfig,
    canonical: String,
    base_canonical: &str,
    label: String,
) -> Variant {
    let is_base = canonical == base_canonical;
    Variant {
        variant_id: ids::variant_id(&canonical),
        label: if is_base || label.is_empty() {
            "baseline".to_string()
        } else {
            label
        },
        axes: Vec::new(),
        config,
        canonical,
    }
}
