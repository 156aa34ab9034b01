//! `ablate-schema`: the results schema of a sweep (docs/results.md), defined once. The runner
//! writes its Parquet tables through it, the report reads them through it, and the tests build
//! their fixtures with it.
//!
//! | module | what |
//! | --- | --- |
//! | [`tables`] | the seven tables: file names, column names ([`col`]), types, nullability |
//! | [`rows`] | the typed rows, which are also the records a trial writes into its folder |
//! | [`mod@write`] | a checked frame per table from typed rows; the atomic Parquet write, alone or as a set |
//! | [`read`] | a lazy scan that checks columns and version; typed columns and rows back |
//! | [`check`] | a frame's columns against its table's definition |
//! | [`error`] | [`SchemaError`] |
//!
//! Architecture invariant: this crate depends on polars and serde only (no runner, model or
//! report code), so both sides of the Parquet contract can depend on it.

pub mod check;
pub mod error;
pub mod read;
pub mod rows;
pub mod tables;
pub mod write;

pub use check::{check_columns, check_nulls, ExtraColumns};
pub use error::SchemaError;
pub use read::{
    classes_from_frame, feature_maps_from_frame, samples_from_frame, scan_table, trials_from_frame,
    ColumnReader,
};
pub use rows::{
    AxisValue, ClassLine, EpochLine, FeatureMap, GateBlock, IterationLine, SampleImage, TrialRow,
    TrialRows, TrialState,
};
pub use tables::{col, ColumnDef, ColumnType, TableDef, AXIS_PREFIX};
pub use write::{
    classes_frame, epochs_frame, feature_maps_frame, gates_frame, iterations_frame, samples_frame,
    stage_table, trials_frame, write_table, StagedTable,
};

/// The version of the schema this build writes and reads: the `schema_version` column of every
/// row. Version 2 added `trials.device_name`.
pub const SCHEMA_VERSION: u32 = 2;
