//! The validated experiment and its resolved trials.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::base::Base;
use super::errors::ConfigError;
use super::expand;
use super::grid::{self, Grid, SECTIONS};
use super::ids::TrialId;
use super::overrides::Override;
use super::raw::RawDoc;
use super::resolved::{ResolvedConfig, Trial, Variant};
use super::sections::Locate;
use super::seeds::SeedPlan;
use super::suggest;

/// The top-level keys of an experiment file.
pub const TOP_KEYS: [&str; 7] = [
    "name",
    "description",
    "seeds",
    "data",
    "model",
    "train",
    "grid",
];

/// A validated experiment: header, base configuration and distinct variants.
#[derive(Debug, Clone)]
pub struct Experiment {
    path: PathBuf,
    name: String,
    description: String,
    seed_plan: SeedPlan,
    seeds: Vec<u64>,
    /// With seeds by precision: each variant's seed count (seeds `0..n`), set round by
    /// round (`crate::commands::seed_rounds`); `None`: every variant runs `seeds`.
    assigned: Option<Vec<usize>>,
    base: ResolvedConfig,
    variants: Vec<Variant>,
    axis_keys: Vec<String>,
    grids: usize,
    source: toml::Table,
}

/// Reads, validates and expands an experiment file, with `--set` overrides
/// applied on top of it.
pub fn load_experiment(path: &Path, overrides: &[Override]) -> Result<Experiment, ConfigError> {
    let raw = RawDoc::read(path)?;
    Experiment::from_raw(raw, overrides)
}

impl Experiment {
    /// Parses an experiment from text (`path` names it in messages).
    pub fn parse(
        path: &Path,
        text: &str,
        overrides: &[Override],
    ) -> Result<Experiment, ConfigError> {
        Experiment::from_raw(RawDoc::parse(path, text.to_string())?, overrides)
    }

    fn from_raw(raw: RawDoc, overrides: &[Override]) -> Result<Experiment, ConfigError> {
        if let Some(message) = sets_nothing(&raw) {
            return Err(ConfigError::Malformed {
                location: super::errors::Location::Whole {
                    path: raw.path.clone(),
                },
                message,
            });
        }
        let at = expand::base_locator(&raw, overrides);
        let table = with_overrides(&raw, overrides)?;
        let name = match string_key(&table, "name", &at)? {
            Some(name) => name,
            None => raw
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        check_name(&name).map_err(|m| invalid(&at, "name", m))?;
        let description = string_key(&table, "description", &at)?.unwrap_or_default();
        let seed_plan = SeedPlan::parse(table.get("seeds"), &at)?;

        let tables = SECTIONS.map(|s| {
            table
                .get(s)
                .cloned()
                .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
        });
        let base = Base::new(tables, &at)?;
        let grids = grid::parse_grids(raw.table.get("grid"), &raw, overrides)?;
        grid::check_size(&grids, seed_plan.most_seeds(), &raw)?;
        let variants = expand::expand(&base, &grids, &raw, overrides)?;
        Ok(Experiment {
            path: raw.path.clone(),
            description,
            seeds: seed_plan.first_round(),
            seed_plan,
            assigned: None,
            base: base.config(),
            variants,
            axis_keys: axis_keys(&grids),
            grids: grids.len(),
            source: as_run(table, &grids, &name),
            name,
        })
    }

    /// The experiment's name (the results folder `<out>/<name>/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The one-line description (empty if none).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seeds every variant is run with (with seeds by precision: the first round's).
    pub fn seeds(&self) -> &[u64] {
        &self.seeds
    }

    /// How the seeds are chosen.
    pub fn seed_plan(&self) -> &SeedPlan {
        &self.seed_plan
    }

    /// Replaces how the seeds are chosen (the command line's precision flags); the
    /// experiment as run records it.
    pub fn set_seed_plan(&mut self, plan: SeedPlan) {
        self.seeds = plan.first_round();
        self.source.insert("seeds".into(), plan.to_toml());
        self.seed_plan = plan;
        self.assigned = None;
    }

    /// Each variant's seed count with seeds by precision (`None` before the first round is
    /// decided, and for a fixed list).
    pub fn assigned(&self) -> Option<&[usize]> {
        self.assigned.as_deref()
    }

    /// Sets each variant's seed count (seeds `0..n`, one count per variant in order).
    pub fn set_assigned(&mut self, counts: Vec<usize>) {
        debug_assert_eq!(counts.len(), self.variants.len());
        self.assigned = Some(counts);
    }

    /// The seeds of variant `i`: its assigned `0..n`, or every seed of the list.
    pub fn variant_seeds(&self, i: usize) -> Vec<u64> {
        match &self.assigned {
            Some(counts) => (0..counts[i] as u64).collect(),
            None => self.seeds.clone(),
        }
    }

    /// The base configuration (the file's tables with `--set` applied).
    pub fn base(&self) -> &ResolvedConfig {
        &self.base
    }

    /// The distinct configurations, in grid order.
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The number of `[[grid]]` entries.
    pub fn grid_count(&self) -> usize {
        self.grids
    }

    /// Every swept key, in order of first appearance.
    pub fn axis_keys(&self) -> Vec<String> {
        self.axis_keys.clone()
    }

    /// The number of trials (variants x seeds, or the assigned seeds).
    pub fn trial_count(&self) -> usize {
        match &self.assigned {
            Some(counts) => counts.iter().sum(),
            None => self.variants.len() * self.seeds.len(),
        }
    }

    /// Every trial: seed-major (all variants with the first seed, then the
    /// second seed...), so a partial sweep already compares every variant. With assigned
    /// seed counts, a variant takes part in the seeds below its count.
    pub fn trials(&self) -> Vec<Trial> {
        let mut out = Vec::with_capacity(self.trial_count());
        let hashers: Vec<Sha256> = self
            .variants
            .iter()
            .map(|v| {
                let mut h = Sha256::new();
                h.update(v.canonical.as_bytes());
                h
            })
            .collect();
        let seeds: Vec<u64> = match &self.assigned {
            Some(counts) => (0..counts.iter().copied().max().unwrap_or(0) as u64).collect(),
            None => self.seeds.clone(),
        };
        for &seed in &seeds {
            for (i, (v, h)) in self.variants.iter().zip(&hashers).enumerate() {
                if self.assigned.as_ref().is_some_and(|c| seed >= c[i] as u64) {
                    continue;
                }
                out.push(Trial {
                    id: TrialId::from_hasher(h.clone(), seed),
                    variant_id: v.variant_id.clone(),
                    variant: v.label.clone(),
                    seed,
                    axes: v.axes.clone(),
                    config: v.config.clone(),
                });
            }
        }
        out
    }

    /// The experiment as run, as TOML: the file's keys with the `--set`
    /// overrides applied (written to `<out>/<name>/experiment.toml`).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.source).map_err(|source| ConfigError::Serialize {
            what: format!("experiment {}", self.name),
            source,
        })
    }
}

/// Why an experiment file that sets nothing is refused (`None`: it sets something). Such a file
/// is an accident more often than a plan (a `>` redirect, an unsaved editor buffer), and it would
/// start the whole default protocol. `--set` overrides do not count: they usually come from a
/// command written for a real experiment file.
fn sets_nothing(raw: &RawDoc) -> Option<String> {
    const DELIBERATE: &str = "running it would start the full default protocol (50 epochs of \
                              CIFAR-10); for a deliberate default run, write one line: \
                              `name = \"defaults\"`";
    if raw.text.trim().is_empty() {
        let what = if raw.text.is_empty() {
            "is empty"
        } else {
            "holds only whitespace"
        };
        return Some(format!("the experiment file {what}: {DELIBERATE}"));
    }
    fn sets(value: &toml::Value) -> bool {
        match value {
            toml::Value::Table(t) => t.values().any(sets),
            toml::Value::Array(items)
                if !items.is_empty() && items.iter().all(|v| v.is_table()) =>
            {
                items.iter().any(sets)
            }
            _ => true,
        }
    }
    if raw.table.values().any(sets) {
        return None;
    }
    Some(format!(
        "the experiment file sets nothing (only comments and empty tables): {DELIBERATE}"
    ))
}

/// The file's table with the `--set` overrides applied; a top-level key that is not one of
/// [`TOP_KEYS`] (in the file or in an override) and an override of `grid` are errors.
fn with_overrides(raw: &RawDoc, overrides: &[Override]) -> Result<toml::Table, ConfigError> {
    for key in raw.table.keys() {
        check_top_key(key, raw.locate(&[key.as_str()], false))?;
    }
    let mut table = raw.table.clone();
    for o in overrides {
        if o.key[0] == "grid" {
            return Err(ConfigError::Override {
                text: o.text.clone(),
                message: "grids cannot be set from the command line; edit the file (or pin a swept key with --set table.key=value)".into(),
            });
        }
        check_top_key(
            &o.key[0],
            super::errors::Location::Override {
                text: o.text.clone(),
            },
        )?;
        o.apply(&mut table)?;
    }
    Ok(table)
}

/// A top-level string key, if present.
fn string_key(
    table: &toml::Table,
    key: &str,
    at: &dyn Locate,
) -> Result<Option<String>, ConfigError> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            at,
            key,
            format!("expected a string, found {}", super::de::describe(other)),
        )),
    }
}

/// The experiment as run: the file with the overrides, its name, and the grids without the
/// axes an override pinned.
fn as_run(mut table: toml::Table, grids: &[Grid], name: &str) -> toml::Table {
    if !grids.is_empty() {
        let entries = grids
            .iter()
            .map(|g| {
                let mut t = toml::Table::new();
                for a in &g.axes {
                    t.insert(a.key.clone(), toml::Value::Array(a.values.clone()));
                }
                toml::Value::Table(t)
            })
            .collect();
        table.insert("grid".into(), toml::Value::Array(entries));
    }
    table.insert("name".into(), toml::Value::String(name.to_string()));
    table
}

fn check_top_key(key: &str, location: super::errors::Location) -> Result<(), ConfigError> {
    if TOP_KEYS.contains(&key) {
        return Ok(());
    }
    Err(ConfigError::UnknownKey {
        location,
        key: key.to_string(),
        suggestion: suggest::closest(key, TOP_KEYS).map(str::to_string),
        expected: TOP_KEYS.iter().map(|s| s.to_string()).collect(),
    })
}

fn invalid(at: &dyn Locate, key: &str, message: String) -> ConfigError {
    ConfigError::InvalidValue {
        location: at.locate(&[key.to_string()]),
        key: key.to_string(),
        message,
    }
}

/// A name must work as a folder name everywhere.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        return Ok(());
    }
    const RULE: &str = "use 1 to 100 letters, digits, `_`, `-` or `.`, not starting with `.`";
    let n = name.chars().count();
    if n > 100 {
        // Not echoed whole: the message stays one readable line.
        let start: String = name.chars().take(20).collect();
        return Err(format!(
            "a name of {n} characters ({start:?}...) is not a usable folder name: {RULE}"
        ));
    }
    Err(format!("{name:?} is not a usable folder name: {RULE}"))
}

fn axis_keys(grids: &[Grid]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for g in grids {
        for a in &g.axes {
            if !keys.contains(&a.key) {
                keys.push(a.key.clone());
            }
        }
    }
    keys
}
