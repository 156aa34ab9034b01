//! Per-variant curves: the training loss per iteration (`iterations.parquet`, binned) and the
//! per-epoch train and test metrics (`epochs.parquet`), each averaged over the given trials.

use std::collections::BTreeMap;

use ablate_schema::col;
use ablate_schema::tables::{EPOCHS, ITERATIONS};
use polars::prelude::*;

use super::{variant_map, Sources};
use crate::error::ReportError;

/// Mean, minimum and maximum across the seeds of a variant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Band {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// One epoch of a variant, aggregated across its trials.
#[derive(Debug, Clone)]
pub struct EpochPoint {
    pub epoch: u32,
    pub train_loss: Band,
    pub train_acc: Band,
    pub test_loss: Band,
    pub test_acc: Band,
}

/// The metrics of an [`EpochPoint`], in its field order.
const EPOCH_METRICS: [&str; 4] = [
    col::TRAIN_LOSS,
    col::TRAIN_ACC,
    col::TEST_LOSS,
    col::TEST_ACC,
];

/// Epoch curves per variant: mean, min and max across the given trials (`map`: trial id to
/// variant id).
pub fn read_epoch_curves(
    src: &Sources,
    map: &[(&str, &str)],
) -> Result<BTreeMap<String, Vec<EpochPoint>>, ReportError> {
    let Some(s) = src.scan(&EPOCHS)? else {
        return Ok(BTreeMap::new());
    };
    let mut aggs = Vec::new();
    for m in EPOCH_METRICS {
        // Non-finite values (a diverging epoch) would break the axis ranges.
        let v = col(m).filter(col(m).is_finite());
        aggs.push(v.clone().mean().alias(format!("{m}_mean")));
        aggs.push(v.clone().min().alias(format!("{m}_min")));
        aggs.push(v.max().alias(format!("{m}_max")));
    }
    let df = s.collect(
        s.lf.clone()
            .inner_join(
                variant_map(&s, map)?,
                col(col::TRIAL_ID),
                col(col::TRIAL_ID),
            )
            .group_by([col(col::VARIANT_ID), col(col::EPOCH)])
            .agg(aggs)
            .sort(
                [col::VARIANT_ID, col::EPOCH],
                SortMultipleOptions::default(),
            ),
    )?;
    let c = s.columns(&df);
    let err = |e| s.schema_err()(e);
    let variants = c.required_strings(col::VARIANT_ID).map_err(err)?;
    let epochs = c.required_values::<UInt32Type>(col::EPOCH).map_err(err)?;
    let mut bands = Vec::new();
    for m in EPOCH_METRICS {
        let get = |stat: &str| c.floats(&format!("{m}_{stat}")).map_err(err);
        bands.push((get("mean")?, get("min")?, get("max")?));
    }
    let band = |k: usize, i: usize| -> Band {
        let (mean, min, max) = &bands[k];
        match (mean[i], min[i], max[i]) {
            (Some(mean), Some(min), Some(max)) => Band { mean, min, max },
            _ => Band {
                mean: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            },
        }
    };
    let mut out: BTreeMap<String, Vec<EpochPoint>> = BTreeMap::new();
    for (i, (variant, epoch)) in variants.into_iter().zip(epochs).enumerate() {
        out.entry(variant).or_default().push(EpochPoint {
            epoch,
            train_loss: band(0, i),
            train_acc: band(1, i),
            test_loss: band(2, i),
            test_acc: band(3, i),
        });
    }
    Ok(out)
}

/// Training loss per iteration per variant, averaged across the given trials and over bins of
/// consecutive iterations so that each variant has at most `max_points` points:
/// `(iteration, loss)` sorted by iteration.
pub fn read_loss_curves(
    src: &Sources,
    map: &[(&str, &str)],
    max_points: usize,
) -> Result<BTreeMap<String, Vec<(f64, f64)>>, ReportError> {
    let Some(s) = src.scan(&ITERATIONS)? else {
        return Ok(BTreeMap::new());
    };
    let err = |e| s.schema_err()(e);
    let max_iter = s.collect(s.lf.clone().select([col(col::ITERATION).max().alias("m")]))?;
    let Some(max_iter) = s
        .columns(&max_iter)
        .values::<UInt64Type>("m")
        .map_err(err)?
        .first()
        .copied()
        .flatten()
    else {
        return Ok(BTreeMap::new());
    };
    let width = ((max_iter + 1) as f64 / max_points.max(1) as f64)
        .ceil()
        .max(1.0);
    let df = s.collect(
        s.lf.clone()
            .select([
                col(col::TRIAL_ID),
                col(col::ITERATION).cast(DataType::Float64).alias("it"),
                col(col::LOSS).cast(DataType::Float64).alias("loss"),
            ])
            .filter(col("loss").is_finite())
            .inner_join(
                variant_map(&s, map)?,
                col(col::TRIAL_ID),
                col(col::TRIAL_ID),
            )
            .with_column((col("it") / lit(width)).cast(DataType::UInt64).alias("bin"))
            .group_by([col(col::VARIANT_ID), col("bin")])
            .agg([col("it").mean().alias("x"), col("loss").mean().alias("y")])
            .sort([col::VARIANT_ID, "bin"], SortMultipleOptions::default()),
    )?;
    let c = s.columns(&df);
    let variants = c.required_strings(col::VARIANT_ID).map_err(err)?;
    let xs = c.floats("x").map_err(err)?;
    let ys = c.floats("y").map_err(err)?;
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((variant, x), y) in variants.into_iter().zip(xs).zip(ys) {
        if let (Some(x), Some(y)) = (x, y) {
            out.entry(variant).or_default().push((x, y));
        }
    }
    Ok(out)
}
