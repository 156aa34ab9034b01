//! Experiment files in three passes: raw TOML with positions ([`raw`]), a
//! validated [`Experiment`] with typed tables ([`experiment`], [`sections`]),
//! and resolved [`Trial`]s with stable ids ([`expand`], [`ids`]).
//! Every error names the file, line, column and key ([`ConfigError`]).

pub mod de;
pub mod errors;
pub mod expand;
pub mod experiment;
pub mod ids;
pub mod overrides;
pub mod raw;
pub mod sections;
pub mod suggest;
pub mod trial_file;

pub use errors::{ConfigError, Location};
pub use experiment::{load_experiment, Experiment, ResolvedConfig, Trial, Variant};
pub use ids::TrialId;
pub use overrides::Override;
pub use trial_file::{parse_trial_config, read_trial_config, write_trial_config, TrialFile};
