//! Reading the sweep's Parquet files (docs/results.md) through the results schema
//! (`ablate_schema`): every file is scanned with its columns and schema version checked first.
//!
//! Small tables (`trials`, `classes`) are collected whole; the large ones (`iterations`,
//! `epochs`, `gates`, `feature_maps`) are scanned lazily and reduced in polars (joins,
//! group-bys, filters) before anything reaches Rust vectors, so memory stays bounded by the
//! size of the aggregates.
//!
//! | module | what |
//! | --- | --- |
//! | `trials` | the rows of `trials.parquet`, and the epoch timing of each trial |
//! | `curves` | per-variant loss and epoch curves |
//! | `inside` | per-class results, gates, sample images and feature maps |

mod curves;
mod inside;
mod trials;

use std::path::PathBuf;

use ablate_schema::tables::TableDef;
use ablate_schema::{col, ColumnReader, SchemaError};
use polars::prelude::*;

use crate::error::ReportError;

pub use ablate_schema::{AxisValue, FeatureMap, SampleImage, TrialRow as Trial};
pub use curves::{read_epoch_curves, read_loss_curves, Band, EpochPoint};
pub use inside::{
    read_classes, read_feature_maps, read_gates, read_samples, trials_with_rows, ClassRow, MeanGate,
};
pub use trials::{read_epoch_timing, read_trials, EpochTiming};

/// The Parquet files of one results folder.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The results folder (`results/<name>`).
    pub dir: PathBuf,
}

/// A table scanned lazily, with its path for errors.
pub(crate) struct Scanned {
    pub lf: LazyFrame,
    pub path: PathBuf,
    pub table: &'static TableDef,
}

impl Scanned {
    /// Collects `lf` (a query on this table), naming the file in errors.
    pub fn collect(&self, lf: LazyFrame) -> Result<DataFrame, ReportError> {
        lf.collect().map_err(|source| ReportError::Parquet {
            path: self.path.clone(),
            source,
        })
    }

    /// Maps a schema error on this table's rows to one naming the file.
    pub fn schema_err(&self) -> impl FnOnce(SchemaError) -> ReportError + '_ {
        |source| ReportError::Schema {
            path: self.path.clone(),
            source,
        }
    }

    /// Typed columns of a frame collected from this table.
    pub fn columns<'a>(&self, df: &'a DataFrame) -> ColumnReader<'a> {
        ColumnReader::new(self.table, df)
    }
}

impl Sources {
    /// Lazily scans the table if its file exists, after checking its columns and schema version.
    pub(crate) fn scan(&self, table: &'static TableDef) -> Result<Option<Scanned>, ReportError> {
        let path = self.dir.join(table.file_name());
        let lf =
            ablate_schema::scan_table(&self.dir, table).map_err(|source| ReportError::Schema {
                path: path.clone(),
                source,
            })?;
        Ok(lf.map(|lf| Scanned { lf, path, table }))
    }

    /// Like [`Sources::scan`], keeping only the rows of the given trials.
    pub(crate) fn scan_trials(
        &self,
        table: &'static TableDef,
        trial_ids: &[&str],
    ) -> Result<Option<Scanned>, ReportError> {
        let Some(mut s) = self.scan(table)? else {
            return Ok(None);
        };
        let mut ids = trial_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let ids = DataFrame::new_infer_height(vec![Column::new(col::TRIAL_ID.into(), ids)])
            .map_err(|source| ReportError::Parquet {
                path: s.path.clone(),
                source,
            })?;
        s.lf =
            s.lf.inner_join(ids.lazy(), col(col::TRIAL_ID), col(col::TRIAL_ID));
        Ok(Some(s))
    }
}

/// A lazy two-column frame `trial_id -> variant_id` for joins.
pub fn trial_map(pairs: &[(&str, &str)]) -> Result<LazyFrame, PolarsError> {
    let t: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let v: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let df = DataFrame::new_infer_height(vec![
        Column::new(col::TRIAL_ID.into(), t),
        Column::new(col::VARIANT_ID.into(), v),
    ])?;
    Ok(df.lazy())
}

/// [`trial_map`] naming the file in errors.
pub(crate) fn variant_map(s: &Scanned, pairs: &[(&str, &str)]) -> Result<LazyFrame, ReportError> {
    trial_map(pairs).map_err(|source| ReportError::Parquet {
        path: s.path.clone(),
        source,
    })
}
