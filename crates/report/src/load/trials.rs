//! The rows of `trials.parquet` (required) and the epoch timing of each trial from
//! `epochs.parquet`.

use std::collections::HashMap;

use ablate_schema::col;
use ablate_schema::tables::{EPOCHS, TRIALS};
use polars::prelude::*;

use super::{Sources, Trial};
use crate::error::ReportError;

/// Reads trials.parquet (required). Non-finite accuracies, times and throughputs (a diverged
/// trial's) read as missing.
pub fn read_trials(src: &Sources) -> Result<Vec<Trial>, ReportError> {
    let Some(s) = src.scan(&TRIALS)? else {
        return Err(ReportError::MissingTrials {
            dir: src.dir.clone(),
        });
    };
    let df = s.collect(s.lf.clone())?;
    let mut trials = ablate_schema::trials_from_frame(&df).map_err(s.schema_err())?;
    let finite = |v: &mut Option<f64>| *v = v.filter(|x| x.is_finite());
    for t in &mut trials {
        finite(&mut t.final_test_acc);
        finite(&mut t.best_test_acc);
        finite(&mut t.final_test_loss);
        finite(&mut t.images_per_sec);
        if !t.train_seconds.is_finite() {
            t.train_seconds = 0.0;
        }
    }
    Ok(trials)
}

/// Mean seconds per epoch and mean images/s of one trial.
pub type EpochTiming = (Option<f64>, Option<f64>);

/// Per-trial epoch timing, by trial id.
pub fn read_epoch_timing(src: &Sources) -> Result<HashMap<String, EpochTiming>, ReportError> {
    let Some(s) = src.scan(&EPOCHS)? else {
        return Ok(HashMap::new());
    };
    let df = s.collect(s.lf.clone().group_by([col(col::TRIAL_ID)]).agg([
        col(col::SECONDS).mean().alias("s"),
        col(col::IMAGES_PER_SEC).mean().alias("ips"),
    ]))?;
    let c = s.columns(&df);
    let err = |e| s.schema_err()(e);
    let ids = c.required_strings(col::TRIAL_ID).map_err(err)?;
    let secs = c.floats("s").map_err(err)?;
    let ips = c.floats("ips").map_err(err)?;
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    Ok(ids
        .into_iter()
        .zip(secs.into_iter().zip(ips))
        .map(|(id, (s, i))| (id, (finite(s), finite(i))))
        .collect())
}
