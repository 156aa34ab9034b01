//! What the final models did, per trial: per-class results (`classes.parquet`), mean gates
//! (`gates.parquet`, averaged across trials), sample images (`samples.parquet`) and feature maps
//! (`feature_maps.parquet`).

use ablate_schema::col;
use ablate_schema::tables::{TableDef, CLASSES, FEATURE_MAPS, GATES, SAMPLES};
use ablate_schema::ClassLine;
use polars::prelude::*;

use super::{FeatureMap, SampleImage, Sources};
use crate::error::ReportError;

/// Per-class results of one trial (final model, test split): `(trial_id, class)`.
pub type ClassRow = (String, ClassLine);

/// Mean gate of one channel for one class in one block, averaged across trials.
#[derive(Debug, Clone, Copy)]
pub struct MeanGate {
    pub block: u32,
    pub class_index: u32,
    pub channel: u32,
    pub mean_gate: f64,
}

/// classes.parquet rows of the given trials, by trial and class index.
pub fn read_classes(src: &Sources, trial_ids: &[&str]) -> Result<Vec<ClassRow>, ReportError> {
    let Some(s) = src.scan_trials(&CLASSES, trial_ids)? else {
        return Ok(Vec::new());
    };
    let df = s.collect(s.lf.clone().sort(
        [col::TRIAL_ID, col::CLASS_INDEX],
        SortMultipleOptions::default(),
    ))?;
    ablate_schema::classes_from_frame(&df).map_err(s.schema_err())
}

/// Trial ids that have rows in the table, sorted.
pub fn trials_with_rows(
    src: &Sources,
    table: &'static TableDef,
) -> Result<Vec<String>, ReportError> {
    let Some(s) = src.scan(table)? else {
        return Ok(Vec::new());
    };
    let df = s.collect(
        s.lf.clone()
            .select([col(col::TRIAL_ID)])
            .unique(None, UniqueKeepStrategy::Any),
    )?;
    let mut ids = s
        .columns(&df)
        .required_strings(col::TRIAL_ID)
        .map_err(s.schema_err())?;
    ids.sort();
    Ok(ids)
}

/// Mean gate per (block, class, channel) averaged across the given trials.
pub fn read_gates(src: &Sources, trial_ids: &[&str]) -> Result<Vec<MeanGate>, ReportError> {
    let Some(s) = src.scan_trials(&GATES, trial_ids)? else {
        return Ok(Vec::new());
    };
    let keys = [col::BLOCK, col::CLASS_INDEX, col::CHANNEL];
    let df = s.collect(
        s.lf.clone()
            .group_by(keys.map(col))
            .agg([col(col::MEAN_GATE)
                .cast(DataType::Float64)
                .mean()
                .alias("g")])
            .sort(keys, SortMultipleOptions::default()),
    )?;
    let c = s.columns(&df);
    let err = |e| s.schema_err()(e);
    let u32s = |name| c.required_values::<UInt32Type>(name).map_err(err);
    let (block, class, channel) = (
        u32s(col::BLOCK)?,
        u32s(col::CLASS_INDEX)?,
        u32s(col::CHANNEL)?,
    );
    let g = c.floats("g").map_err(err)?;
    Ok((0..df.height())
        .filter_map(|i| {
            Some(MeanGate {
                block: block[i],
                class_index: class[i],
                channel: channel[i],
                mean_gate: g[i].filter(|v| v.is_finite())?,
            })
        })
        .collect())
}

/// The rows of one trial with `sample < n` (and `extra`), sorted by `order`.
fn trial_rows(
    src: &Sources,
    table: &'static TableDef,
    trial_id: &str,
    n: usize,
    extra: Option<Expr>,
    order: &[&str],
) -> Result<Option<(DataFrame, super::Scanned)>, ReportError> {
    let Some(s) = src.scan(table)? else {
        return Ok(None);
    };
    let mut keep = col(col::TRIAL_ID)
        .eq(lit(trial_id))
        .and(col(col::SAMPLE).lt(lit(n as u32)));
    if let Some(e) = extra {
        keep = keep.and(e);
    }
    let df = s.collect(
        s.lf.clone()
            .filter(keep)
            .sort(order.to_vec(), SortMultipleOptions::default()),
    )?;
    Ok(Some((df, s)))
}

/// The first `n` samples of one trial (samples.parquet).
pub fn read_samples(
    src: &Sources,
    trial_id: &str,
    n: usize,
) -> Result<Vec<SampleImage>, ReportError> {
    let Some((df, s)) = trial_rows(src, &SAMPLES, trial_id, n, None, &[col::SAMPLE])? else {
        return Ok(Vec::new());
    };
    let rows = ablate_schema::samples_from_frame(&df).map_err(s.schema_err())?;
    Ok(rows.into_iter().map(|(_, image)| image).collect())
}

/// Feature maps of one trial: samples `< n`, channels `< channels`.
pub fn read_feature_maps(
    src: &Sources,
    trial_id: &str,
    n: usize,
    channels: u32,
) -> Result<Vec<FeatureMap>, ReportError> {
    let Some((df, s)) = trial_rows(
        src,
        &FEATURE_MAPS,
        trial_id,
        n,
        Some(col(col::CHANNEL).lt(lit(channels))),
        &[col::SAMPLE, col::BLOCK, col::CHANNEL],
    )?
    else {
        return Ok(Vec::new());
    };
    let rows = ablate_schema::feature_maps_from_frame(&df).map_err(s.schema_err())?;
    Ok(rows.into_iter().map(|(_, map)| map).collect())
}
