//! A trial's `config.toml`: what `ablate trial DIR` reads back.

use std::path::Path;

use serde::{Deserialize, Serialize};

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;

use super::de;
use super::errors::ConfigError;
use super::ids::TrialId;
use super::raw::RawDoc;
use super::resolved::{ResolvedConfig, Trial};
use super::sections::{self, Locate};

/// The content of `trials/<id>/config.toml`: the trial's identity and its
/// resolved configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialFile {
    /// The experiment's name.
    pub experiment: String,
    /// The trial's seed.
    pub seed: u64,
    /// The trial's id (hash of the canonical configuration and seed).
    pub trial_id: TrialId,
    /// The configuration's id (without the seed).
    pub variant_id: String,
    /// The variant's label.
    pub variant: String,
    /// The swept keys and this trial's values (dotted key -> value).
    #[serde(default)]
    pub axes: toml::Table,
    /// The `[data]` table.
    pub data: DataConfig,
    /// The `[model]` table.
    pub model: ModelSpec,
    /// The `[train]` table.
    pub train: TrainConfig,
}

impl TrialFile {
    /// The record of `trial` of experiment `experiment`.
    pub fn new(experiment: &str, trial: &Trial) -> TrialFile {
        TrialFile {
            experiment: experiment.to_string(),
            seed: trial.seed,
            trial_id: trial.id.clone(),
            variant_id: trial.variant_id.clone(),
            variant: trial.variant.clone(),
            axes: trial.axes.iter().cloned().collect(),
            data: trial.config.data.clone(),
            model: trial.config.model.clone(),
            train: trial.config.train.clone(),
        }
    }

    /// The resolved configuration.
    pub fn config(&self) -> ResolvedConfig {
        ResolvedConfig {
            data: self.data.clone(),
            model: self.model.clone(),
            train: self.train.clone(),
        }
    }

    /// The id its configuration and seed hash to now (differs from
    /// `trial_id` if the file was edited or a library default changed).
    pub fn recomputed_id(&self) -> TrialId {
        self.config().trial_id(self.seed)
    }

    /// The file's text. The header comment escapes what a comment cannot hold (a swept string
    /// value may bring a newline or a control character into the label).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        let body = toml::to_string(self).map_err(|source| ConfigError::Serialize {
            what: format!("trial {}", self.trial_id),
            source,
        })?;
        Ok(format!(
            "# Trial {} of experiment {:?}: {} (seed {}).\n# Written by `ablate sweep`; `ablate trial DIR` reads it.\n{body}",
            self.trial_id,
            self.experiment,
            self.variant.escape_debug(),
            self.seed
        ))
    }
}

struct FileLocator<'a>(&'a RawDoc);

impl Locate for FileLocator<'_> {
    fn locate(&self, path: &[String]) -> super::errors::Location {
        self.0.locate(path, false)
    }
}

/// Reads and validates a trial's `config.toml`.
pub fn read_trial_config(path: &Path) -> Result<TrialFile, ConfigError> {
    parse_trial_config(RawDoc::read(path)?)
}

/// Validates the text of a trial's `config.toml` (`raw`, read or parsed by the caller).
pub fn parse_trial_config(raw: RawDoc) -> Result<TrialFile, ConfigError> {
    let at = FileLocator(&raw);
    let value = toml::Value::Table(raw.table.clone());
    let file: TrialFile = de::from_value(&value).map_err(|e| {
        // Errors inside a table are located by the table's key path; the
        // header keys have no table.
        match e.path.first() {
            Some(de::PathSegment::Key(first))
                if ["data", "model", "train"].contains(&first.as_str()) =>
            {
                let first = first.clone();
                sections::de_error(
                    &first,
                    de::DeError {
                        path: e.path[1..].to_vec(),
                        kind: e.kind,
                    },
                    &at,
                )
            }
            _ => {
                let segs = sections::segments_to_strings(&e.path);
                match e.kind {
                    de::DeErrorKind::UnknownKey { key, expected } => ConfigError::UnknownKey {
                        location: at.locate(&segs),
                        suggestion: super::suggest::closest(
                            &key,
                            expected.iter().map(String::as_str),
                        )
                        .map(str::to_string),
                        key,
                        expected,
                    },
                    kind if e.path.is_empty() => ConfigError::Malformed {
                        location: at.locate(&segs),
                        message: de::DeError { path: vec![], kind }.to_string(),
                    },
                    kind => ConfigError::InvalidValue {
                        location: at.locate(&segs),
                        key: de::render_path(&e.path),
                        message: de::DeError { path: vec![], kind }.to_string(),
                    },
                }
            }
        }
    })?;
    // The library's range checks, located in the file.
    let data = sections::typed::<DataConfig>(&raw.table["data"], &at)?;
    sections::typed::<ModelSpec>(&raw.table["model"], &at)?;
    let train = sections::typed::<TrainConfig>(&raw.table["train"], &at)?;
    sections::check_across(&data, &train, &at)?;
    Ok(file)
}

/// Writes `trial`'s `config.toml` to `path` atomically (a temporary file in
/// the same folder, then a rename).
pub fn write_trial_config(path: &Path, experiment: &str, trial: &Trial) -> Result<(), ConfigError> {
    write_atomic(
        path,
        TrialFile::new(experiment, trial)
            .to_toml_string()?
            .as_bytes(),
    )
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
