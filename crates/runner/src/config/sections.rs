//! Pass 2 for the `[data]`, `[model]` and `[train]` tables: typed values from
//! the library crates, checked by their own `validate()`, with every error
//! mapped back to the file position (or `--set`) the faulty key came from.

use serde::de::DeserializeOwned;
use serde::Serialize;

use ablate_data::DataConfig;
use ablate_model::train::TrainConfig;
use ablate_model::ModelSpec;

use super::de::{self, DeError, DeErrorKind, PathSegment};
use super::errors::{ConfigError, Location};
use super::ids;
use super::suggest;

/// One typed table of an experiment.
pub trait Section: Sized + Clone + Serialize + DeserializeOwned {
    /// The table's name (`data`, `model`, `train`).
    const NAME: &'static str;
    /// The library's range checks: `Err((key inside the table, problem))`.
    fn check(&self) -> Result<(), (String, String)>;
    /// The equivalent value with keys that have no effect reset (identical
    /// trials then hash the same).
    fn canonicalize(self) -> Self {
        self
    }
}

impl Section for DataConfig {
    const NAME: &'static str = "data";
    fn check(&self) -> Result<(), (String, String)> {
        self.validate().map_err(|e| (e.key, e.problem))
    }
}

impl Section for ModelSpec {
    const NAME: &'static str = "model";
    fn check(&self) -> Result<(), (String, String)> {
        self.validate().map_err(|e| match e {
            ablate_model::SpecError::Invalid { key, expected, got } => {
                (key.to_string(), format!("must be {expected}, got {got}"))
            }
            ablate_model::SpecError::OtherArch {
                key,
                applies_to,
                arch,
                got,
            } => (
                key.to_string(),
                format!("applies to arch = \"{applies_to}\" only (this model is arch = \"{arch}\"), got {got}"),
            ),
            other => (String::new(), other.to_string()),
        })
    }
    fn canonicalize(self) -> Self {
        self.canonical()
    }
}

impl Section for TrainConfig {
    const NAME: &'static str = "train";
    fn check(&self) -> Result<(), (String, String)> {
        self.validate().map_err(|e| (e.key.to_string(), e.reason))
    }
    /// `fixed_seed` has no effect when the seed drives every source.
    fn canonicalize(mut self) -> Self {
        if self.seed_varies.is_all() {
            self.fixed_seed = 0;
        }
        self
    }
}

/// Something that can say where a key of the resolved configuration came from.
pub trait Locate {
    /// The location of the value at `path` (first segment: the table name).
    fn locate(&self, path: &[String]) -> Location;
}

/// Deserializes and validates one table. `value` is the table (or whatever the
/// file holds under the table's name).
pub fn typed<T: Section>(value: &toml::Value, at: &dyn Locate) -> Result<T, ConfigError> {
    let parsed: T = de::from_value(value).map_err(|e| de_error(T::NAME, e, at))?;
    if let Err((key, problem)) = parsed.check() {
        let mut path = vec![T::NAME.to_string()];
        path.extend(segments_to_strings(&parse_key_path(&key)));
        let full = if key.is_empty() {
            T::NAME.to_string()
        } else {
            format!("{}.{key}", T::NAME)
        };
        return Err(ConfigError::InvalidValue {
            location: at.locate(&path),
            key: full,
            message: problem,
        });
    }
    Ok(parsed)
}

/// The checks that need two tables: `train.random_streams = "pytorch"` draws only the
/// reference script's augmentation (`data.augment`), located at `train.random_streams`; and
/// `train.seed_varies = "sample"` needs a `data.resample` to vary, located at
/// `train.seed_varies`.
pub fn check_across(
    data: &DataConfig,
    train: &TrainConfig,
    at: &dyn Locate,
) -> Result<(), ConfigError> {
    train
        .random_streams
        .check_data(data)
        .map_err(|e| ConfigError::InvalidValue {
            location: at.locate(&["train".to_string(), "random_streams".to_string()]),
            key: "train.random_streams".to_string(),
            message: e.to_string(),
        })?;
    if train.seed_varies == ablate_data::SeedVaries::Sample && data.resample.is_none() {
        return Err(ConfigError::InvalidValue {
            location: at.locate(&["train".to_string(), "seed_varies".to_string()]),
            key: "train.seed_varies".to_string(),
            message: "\"sample\" needs data.resample = \"bootstrap\" or \"subsample\" (there is no sample to vary)".into(),
        });
    }
    Ok(())
}

/// Maps a deserialization error under table `section` to a located error.
pub fn de_error(section: &str, e: DeError, at: &dyn Locate) -> ConfigError {
    let mut segs = vec![PathSegment::Key(section.to_string())];
    segs.extend(e.path.iter().cloned());
    let path = segments_to_strings(&segs);
    let location = at.locate(&path);
    let key = de::render_path(&segs);
    match e.kind {
        DeErrorKind::UnknownKey { key: k, expected } => ConfigError::UnknownKey {
            location,
            key,
            suggestion: suggest::closest(&k, expected.iter().map(String::as_str))
                .map(str::to_string),
            expected,
        },
        DeErrorKind::UnknownVariant { value, expected } => ConfigError::InvalidValue {
            location,
            key,
            message: unknown_value_message(&value, &expected),
        },
        DeErrorKind::Message(message) => ConfigError::InvalidValue {
            location,
            key,
            message,
        },
    }
}

/// `unknown value `sse`; did you mean `se`?` (or the accepted values).
pub fn unknown_value_message(value: &str, expected: &[String]) -> String {
    match suggest::closest(value, expected.iter().map(String::as_str)) {
        Some(s) => format!(
            "unknown value `{value}`; did you mean `{s}`? (expected one of {})",
            de::quoted_list(expected)
        ),
        None => format!(
            "unknown value `{value}`, expected one of {}",
            de::quoted_list(expected)
        ),
    }
}

/// Splits `color_jitter[3]` or `a.b` into path segments.
pub fn parse_key_path(key: &str) -> Vec<PathSegment> {
    let mut out = Vec::new();
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push(PathSegment::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                match stripped[..close].parse() {
                    Ok(i) => out.push(PathSegment::Index(i)),
                    Err(_) => break,
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else {
            out.push(PathSegment::Key(rest.to_string()));
        }
    }
    out
}

/// Path segments as the span index stores them (indices in decimal).
pub fn segments_to_strings(segs: &[PathSegment]) -> Vec<String> {
    segs.iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.clone(),
            PathSegment::Index(i) => i.to_string(),
        })
        .collect()
}

/// The canonical lines of one table (see [`ids::canonical`]), prefixed with
/// the table's name.
pub fn canonical_section<T: Section>(value: &T) -> String {
    ids::canonical_under(T::NAME, &to_value(value))
}

/// A typed table as a TOML value.
pub fn to_value<T: Serialize>(value: &T) -> toml::Value {
    // The library configs are plain structs of numbers, strings, enums and
    // lists: serializing them cannot fail.
    toml::Value::try_from(value).expect("library configs serialize to toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(
            parse_key_path("color_jitter[3]"),
            vec![
                PathSegment::Key("color_jitter".into()),
                PathSegment::Index(3)
            ]
        );
        assert_eq!(
            parse_key_path("a.b"),
            vec![PathSegment::Key("a".into()), PathSegment::Key("b".into())]
        );
    }
}
