//! The resolved configurations of an experiment: a trial's typed tables
//! ([`ResolvedConfig`]), a distinct configuration ([`Variant`]) and a configuration with a seed
//! ([`Trial`]), with the ids they hash to.

use serde::{Deserialize, Serialize};

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;

use super::ids::{self, TrialId};
use super::sections;

/// One trial's full configuration: the three typed tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedConfig {
    /// The `[data]` table.
    pub data: DataConfig,
    /// The `[model]` table (canonical: keys without effect at their defaults).
    pub model: ModelSpec,
    /// The `[train]` table.
    pub train: TrainConfig,
}

impl ResolvedConfig {
    /// The configuration as a TOML table with `data`, `model` and `train`.
    pub fn to_table(&self) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("data".into(), sections::to_value(&self.data));
        t.insert("model".into(), sections::to_value(&self.model));
        t.insert("train".into(), sections::to_value(&self.train));
        t
    }

    /// The canonical text the ids hash (sorted keys, normalized numbers).
    pub fn canonical(&self) -> String {
        let mut s = sections::canonical_section(&self.data);
        s.push_str(&sections::canonical_section(&self.model));
        s.push_str(&sections::canonical_section(&self.train));
        s
    }

    /// The id of this configuration without a seed.
    pub fn variant_id(&self) -> String {
        ids::variant_id(&self.canonical())
    }

    /// The id of this configuration with `seed`.
    pub fn trial_id(&self, seed: u64) -> TrialId {
        TrialId::new(&self.canonical(), seed)
    }
}

/// One distinct configuration of an experiment (a trial without its seed).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// 12 hex characters of the SHA-256 of the canonical configuration.
    pub variant_id: String,
    /// `attention=se reduction=16 placement=post_relu`, or `baseline`.
    pub label: String,
    /// The swept keys of its grid and their values (keys without effect left out).
    pub axes: Vec<(String, toml::Value)>,
    /// The configuration.
    pub config: ResolvedConfig,
    pub(crate) canonical: String,
}

/// One trial: a variant with a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// 12 hex characters of the SHA-256 of the canonical configuration and seed.
    pub id: TrialId,
    /// The id of the configuration without the seed.
    pub variant_id: String,
    /// The variant's label (`baseline` for the base configuration).
    pub variant: String,
    /// The seed (weights, dropout, shuffling, augmentation).
    pub seed: u64,
    /// The swept keys and this trial's values.
    pub axes: Vec<(String, toml::Value)>,
    /// The configuration.
    pub config: ResolvedConfig,
}
