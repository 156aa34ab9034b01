//! The base configuration of an experiment: its `[data]`, `[model]` and `[train]` tables
//! (after `--set`) validated and typed, with the canonical text the ids hash.

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;

use super::errors::ConfigError;
use super::resolved::ResolvedConfig;
use super::sections::{self, canonical_section, Locate, Section};

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
