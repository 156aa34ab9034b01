//! What can be wrong with a table: a column against its definition, the schema version, or the
//! file itself.

use std::path::PathBuf;

use polars::prelude::PolarsError;

/// A table that does not follow the schema, or that cannot be built, read or written.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A column is missing, has another type, holds a null where none is allowed, is not
    /// documented, or holds a value its rows cannot have.
    #[error("column `{column}` of {table}.parquet {problem}")]
    Column {
        /// The table's file stem.
        table: &'static str,
        /// The column.
        column: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The rows carry another schema version than this build reads and writes.
    #[error(
        "{table}.parquet has schema_version {found}, this build reads version {expected} \
         (the trial folders are the source of truth: rerun `ablate sweep` on the experiment to \
         rebuild its Parquet files)"
    )]
    Version {
        /// The table's file stem.
        table: &'static str,
        /// The version found (the first that differs).
        found: u32,
        /// [`crate::SCHEMA_VERSION`].
        expected: u32,
    },
    /// polars could not build, scan or query a frame.
    #[error("cannot process {table}.parquet")]
    Polars {
        /// The table's file stem.
        table: &'static str,
        /// The cause (boxed: it is large).
        #[source]
        source: Box<PolarsError>,
    },
    /// A Parquet file could not be read, written or renamed into place.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl SchemaError {
    pub(crate) fn column(
        table: &'static str,
        column: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Column {
            table,
            column: column.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn polars(table: &'static str) -> impl FnOnce(PolarsError) -> Self {
        move |source| Self::Polars {
            table,
            source: Box::new(source),
        }
    }
}
