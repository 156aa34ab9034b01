//! Pass 3b: the grids ([`super::grid`]) expanded over the base ([`super::base`]) into variants
//! (resolved configurations).
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

use super::base::Base;
use super::errors::{ConfigError, Location};
use super::grid::{Grid, SECTIONS};
use super::ids;
use super::labels::{label, short_keys};
use super::overrides::Override;
use super::raw::RawDoc;
use super::resolved::{ResolvedConfig, Variant};
use super::sections::{self, Locate, Section};

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
