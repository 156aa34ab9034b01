//! Experiment files in three passes: raw TOML with positions ([`raw`]), a
//! validated [`Experiment`] with typed tables ([`experiment`], [`sections`]),
//! and resolved [`Trial`]s with stable ids ([`grid`], [`expand`], [`ids`]).
//! Every error names the file, line, column and key ([`ConfigError`]).
//!
//! | module | what |
//! | --- | --- |
//! | [`raw`] | pass 1: the TOML text with the position of every key |
//! | [`experiment`] | pass 2: the validated [`Experiment`] (header, seeds, base, variants) |
//! | [`seeds`] | the `seeds` key: a fixed list or seeds by precision (`[seeds]` rounds) |
//! | [`sections`], [`de`] | the typed `[data]`, `[model]`, `[train]` tables and their errors |
//! | [`base`] | the base configuration, typed, with its canonical text |
//! | [`grid`] | pass 3a: the `[[grid]]` entries read into swept keys |
//! | [`expand`] | pass 3b: the grids expanded over the base into distinct variants |
//! | [`labels`] | variant labels from the swept keys and values |
//! | [`resolved`] | [`ResolvedConfig`], [`Variant`], [`Trial`] |
//! | [`ids`] | canonical text and the stable variant and trial ids |
//! | [`overrides`] | `--set table.key=value` |
//! | [`trial_file`] | a trial's `config.toml`, written by the sweep and read by the trial |
//! | [`errors`], [`suggest`] | [`ConfigError`] with file, line and key; "did you mean" |

pub mod base;
pub mod de;
pub mod errors;
pub mod expand;
pub mod experiment;
pub mod grid;
pub mod ids;
pub mod labels;
pub mod overrides;
pub mod raw;
pub mod resolved;
pub mod sections;
pub mod seeds;
pub mod suggest;
pub mod trial_file;

pub use errors::{ConfigError, Location};
pub use experiment::{load_experiment, Experiment};
pub use ids::TrialId;
pub use overrides::Override;
pub use resolved::{ResolvedConfig, Trial, Variant};
pub use trial_file::{parse_trial_config, read_trial_config, write_trial_config, TrialFile};
