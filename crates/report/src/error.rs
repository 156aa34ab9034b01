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
    /// A Parquet file was written with a schema version this reader does not know.
    #[error("{path} has schema_version {found}, this report reads version {expected}")]
    SchemaVersion {
        /// The Parquet file.
        path: PathBuf,
        /// The version found (smallest one that differs).
        found: u32,
        /// The version this crate reads.
        expected: u32,
    },
    /// A documented column is missing or has the wrong type.
    #[error("{path}: column `{column}` {problem}")]
    Column {
        /// The Parquet file.
        path: PathBuf,
        /// The column name.
        column: String,
        /// What is wrong with it.
        problem: String,
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
