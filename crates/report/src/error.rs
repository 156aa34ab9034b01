//! The report's error type.

use std::path::PathBuf;

/// Boxed cause of a chart drawing failure (plotters' error types are generic
/// over the backend).
pub type DrawError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The results folder has no `trials.parquet`.
    #[error("no trials.parquet in {dir} (has the sweep written its results yet?)")]
    MissingTrials {
        /// The results folder given.
        dir: PathBuf,
    },
    /// Reading or querying a Parquet file failed.
    #[error("cannot read {path}")]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The polars error.
        #[source]
        source: polars::prelude::PolarsError,
    },
    /// A Parquet file does not follow the results schema (a column missing, of another type
    /// or holding a null where none is allowed; another schema version).
    #[error("{path} does not follow the results schema (docs/results.md)")]
    Schema {
        /// The Parquet file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ablate_schema::SchemaError,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing a chart failed.
    #[error("cannot draw chart {chart}")]
    Chart {
        /// The chart's file stem.
        chart: String,
        /// The plotters or encoder error.
        #[source]
        source: DrawError,
    },
    /// The embedded font could not be registered with plotters.
    #[error("cannot register the embedded DejaVu Sans font")]
    Font,
}
