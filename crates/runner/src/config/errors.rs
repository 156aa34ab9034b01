//! Errors of the experiment-file passes, each naming where the fault is.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A position in a file (1-based line and column).
    File {
        /// The file as given.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// A file as a whole (the value is a default or the fault has no position).
    Whole {
        /// The file as given.
        path: PathBuf,
    },
    /// A `--set key=value` given on the command line.
    Override {
        /// The override as given.
        text: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Location::Whole { path } => write!(f, "{}", path.display()),
            Location::Override { text } => write!(f, "--set {text}"),
        }
    }
}

/// An error in an experiment file, a `--set` override or a trial's config.toml.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration could not be written as TOML.
    #[error("cannot write {what} as toml")]
    Serialize {
        /// What was being written (`experiment smoke`, `trial 0123456789ab`).
        what: String,
        /// The cause.
        #[source]
        source: toml::ser::Error,
    },
    /// The text is not valid TOML.
    #[error("{location}: invalid toml: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// toml's message.
        message: String,
    },
    /// A key that is not known at that place.
    #[error("{location}: unknown key `{key}`{}", hint(suggestion.as_deref(), expected))]
    UnknownKey {
        /// Where the key is.
        location: Location,
        /// The full dotted key, e.g. `data.augmnt`.
        key: String,
        /// The closest known key, if one is close.
        suggestion: Option<String>,
        /// The keys accepted at that place.
        expected: Vec<String>,
    },
    /// A value of the wrong type or an impossible value.
    #[error("{location}: `{key}`: {message}")]
    InvalidValue {
        /// Where the value is.
        location: Location,
        /// The full dotted key, e.g. `model.reduction`.
        key: String,
        /// What is wrong with it, e.g. `expected an integer, found string "8"`.
        message: String,
    },
    /// A grid axis with no values.
    #[error("{location}: grid axis `{key}` is empty; give it at least one value")]
    EmptyAxis {
        /// Where the axis is.
        location: Location,
        /// The swept key.
        key: String,
    },
    /// A problem of the file as a whole (e.g. a required table is missing).
    #[error("{location}: {message}")]
    Malformed {
        /// Where (usually the file as a whole).
        location: Location,
        /// What is wrong.
        message: String,
    },
    /// A malformed `--set` argument.
    #[error("invalid override `--set {text}`: {message}")]
    Override {
        /// The argument as given.
        text: String,
        /// What is wrong.
        message: String,
    },
}

fn hint(suggestion: Option<&str>, expected: &[String]) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None if expected.is_empty() => String::new(),
        None => format!(
            "; expected one of {}",
            expected
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl ConfigError {
    /// Where the error is, when it is in a configuration value.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. }
            | ConfigError::UnknownKey { location, .. }
            | ConfigError::InvalidValue { location, .. }
            | ConfigError::EmptyAxis { location, .. }
            | ConfigError::Malformed { location, .. } => Some(location),
            _ => None,
        }
    }
}
