//! Per-trial records and the Parquet files rebuilt from them (docs/results.md).

pub mod damage;
pub mod parquet;
pub mod records;
pub mod scan;
pub mod sink;
