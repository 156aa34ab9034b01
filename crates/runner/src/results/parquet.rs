//! Rebuilds a sweep's Parquet files (docs/results.md) from its trial folders, through the
//! results schema (`ablate_schema`).
//!
//! The trial folders are the source of truth; every Parquet file is derived from them, written to
//! a temporary file in the sweep folder and renamed over the old one, so a reader never sees a
//! half-written file and a killed runner loses nothing.

use std::path::{Path, PathBuf};

use ablate_schema::tables::{self, TableDef};
use ablate_schema::{SchemaError, TrialRow, TrialRows};
use polars::prelude::DataFrame;
use rayon::prelude::*;

use super::records::TrialState;
use super::trial_folder::{trial_dirs, FolderError, TrialRecords};

/// Errors rebuilding the Parquet files.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// A trial folder could not be read.
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// A table could not be built or written.
    #[error("cannot write {path}")]
    Schema {
        /// The Parquet file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: SchemaError,
    },
}

/// Row counts of the rebuilt files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Rows of `trials.parquet`.
    pub trials: usize,
    /// Rows of `epochs.parquet`.
    pub epochs: usize,
    /// Rows of `iterations.parquet`.
    pub iterations: usize,
    /// Rows of `classes.parquet`.
    pub classes: usize,
    /// Rows of `gates.parquet`.
    pub gates: usize,
    /// Rows of `samples.parquet`.
    pub samples: usize,
    /// Rows of `feature_maps.parquet`.
    pub feature_maps: usize,
}

/// Reads every trial folder of the sweep and rewrites all seven Parquet files atomically.
pub fn rebuild(sweep_dir: &Path) -> Result<RebuildSummary, ParquetError> {
    let dirs = trial_dirs(sweep_dir)?;
    let records: Vec<TrialRecords> = dirs
        .par_iter()
        .map(|d| TrialRecords::read(d))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    write_all(sweep_dir, &records)
}

/// One table's records of every trial: `(trial_id, records)`.
fn per_trial<'a, T>(
    records: &'a [TrialRecords],
    of: impl Fn(&'a TrialRecords) -> Option<&'a Vec<T>>,
) -> Vec<TrialRows<'a, T>> {
    records
        .iter()
        .filter_map(|r| Some((r.header.trial_id.as_str(), of(r)?.as_slice())))
        .collect()
}

type BuildFrame = fn(&[TrialRecords]) -> Result<DataFrame, SchemaError>;

/// Each table and how its frame is built from the trials' records, in the order of
/// [`RebuildSummary`].
const FRAMES: [(&TableDef, BuildFrame); 7] = [
    (&tables::TRIALS, |r| {
        ablate_schema::trials_frame(&r.iter().map(trial_row).collect::<Vec<_>>())
    }),
    (&tables::EPOCHS, |r| {
        ablate_schema::epochs_frame(&per_trial(r, |t| Some(&t.epochs)))
    }),
    (&tables::ITERATIONS, |r| {
        ablate_schema::iterations_frame(&per_trial(r, |t| Some(&t.iterations)))
    }),
    (&tables::CLASSES, |r| {
        ablate_schema::classes_frame(&per_trial(r, |t| Some(&t.final_json.as_ref()?.classes)))
    }),
    (&tables::GATES, |r| {
        ablate_schema::gates_frame(&per_trial(r, |t| Some(&t.inside.as_ref()?.gates)))
    }),
    (&tables::SAMPLES, |r| {
        ablate_schema::samples_frame(&per_trial(r, |t| Some(&t.inside.as_ref()?.samples)))
    }),
    (&tables::FEATURE_MAPS, |r| {
        ablate_schema::feature_maps_frame(&per_trial(r, |t| Some(&t.inside.as_ref()?.feature_maps)))
    }),
];

/// Writes the seven Parquet files of `records` into `sweep_dir`, as a set: all seven are
/// written to temporary files first and renamed only once every one is complete, so a failure
/// (a full disk) leaves the previous set whole.
pub fn write_all(
    sweep_dir: &Path,
    records: &[TrialRecords],
) -> Result<RebuildSummary, ParquetError> {
    let staged = FRAMES
        .par_iter()
        .map(|(table, frame)| {
            let schema = |source| ParquetError::Schema {
                path: sweep_dir.join(table.file_name()),
                source,
            };
            let mut df = frame(records).map_err(schema)?;
            let staged = ablate_schema::stage_table(sweep_dir, table, &mut df).map_err(schema)?;
            Ok((staged, df.height()))
        })
        .collect::<Result<Vec<_>, ParquetError>>()?;
    let mut heights = Vec::with_capacity(staged.len());
    for (table, height) in staged {
        let path = table.path().to_path_buf();
        table
            .commit()
            .map_err(|source| ParquetError::Schema { path, source })?;
        heights.push(height);
    }
    Ok(RebuildSummary {
        trials: heights[0],
        epochs: heights[1],
        iterations: heights[2],
        classes: heights[3],
        gates: heights[4],
        samples: heights[5],
        feature_maps: heights[6],
    })
}

/// The row of `trials.parquet` of one trial: its identity and status, with the summary numbers
/// derived from its records.
fn trial_row(r: &TrialRecords) -> TrialRow {
    let last = r.epochs.last();
    let best = r
        .epochs
        .iter()
        .map(|e| e.test_acc)
        .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))));
    let secs: f64 = r.epochs.iter().map(|e| e.seconds).sum();
    let images: f64 = r.epochs.iter().map(|e| e.images_per_sec * e.seconds).sum();
    let status = effective_state(r);
    TrialRow {
        status,
        attempts: r.status.attempts,
        params: r.final_json.as_ref().map(|f| f.params).or(r.status.params),
        macs: r.final_json.as_ref().map(|f| f.macs).or(r.status.macs),
        epochs_done: r.epochs.len() as u32,
        final_test_acc: last.map(|e| e.test_acc),
        best_test_acc: best,
        final_test_loss: last.map(|e| e.test_loss),
        train_seconds: if r.status.train_seconds > 0.0 {
            r.status.train_seconds
        } else {
            secs
        },
        images_per_sec: (secs > 0.0).then(|| images / secs),
        device: r.status.device.clone(),
        device_name: r.status.device_name.clone(),
        started_at: r.status.started_at.clone(),
        ended_at: match status {
            TrialState::Running => None,
            _ => r.status.ended_at.clone(),
        },
        exit_code: r.status.exit_code,
        error: r.status.error.clone(),
        ..r.header.clone()
    }
}

/// The status as recorded; a trial whose record says `running` but whose `final.json` says it
/// ended is reported with the final outcome (the runner was killed before updating it).
fn effective_state(r: &TrialRecords) -> TrialState {
    match (&r.status.status, &r.final_json) {
        (TrialState::Running, Some(f)) => f.outcome,
        (s, _) => *s,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use ablate_schema::ExtraColumns;
    use polars::prelude::*;

    use super::*;
    use crate::results::records::{
        files, write_json_atomic, AxisValue, ClassLine, EpochLine, FeatureMap, FinalJson,
        GateBlock, InsideJson, IterationLine, SampleImage, TrialStatus,
    };

    fn write_trial(sweep: &Path, id: &str, seed: u64, axes: &str, status: TrialState) -> PathBuf {
        let d = sweep.join("trials").join(id);
        fs::create_dir_all(&d).unwrap();
        let config = format!(
            "experiment = \"t\"\nseed = {seed}\ntrial_id = \"{id}\"\nvariant_id = \"v{id}\"\n\
             variant = \"label {id}\"\n\n[axes]\n{axes}\n\n[data]\ndataset = \"synthetic\"\n\n\
             [model]\nattention = \"se\"\n\n[train]\nepochs = 2\n"
        );
        fs::write(d.join(files::CONFIG), config).unwrap();
        let mut s = TrialStatus::pending();
        s.status = status;
        s.attempts = 1;
        s.exit_code = Some(0);
        s.train_seconds = 3.0;
        write_json_atomic(&d.join(files::STATUS), &s).unwrap();
        d
    }

    fn lines<T: serde::Serialize>(path: &Path, recs: &[T], torn: bool) {
        let mut text = String::new();
        for r in recs {
            text.push_str(&serde_json::to_string(r).unwrap());
            text.push('\n');
        }
        if torn {
            text.push_str("{\"epoch\": 9");
        }
        fs::write(path, text).unwrap();
    }

    fn epoch(e: u32, acc: f64) -> EpochLine {
        EpochLine {
            epoch: e,
            train_loss: 1.0,
            train_acc: 0.5,
            test_loss: 2.0 - acc,
            test_acc: acc,
            lr: 1e-3,
            seconds: 1.5,
            images_per_sec: 200.0,
        }
    }

    /// Two trials in folders (one completed with everything, one failed after an epoch) rebuild
    /// into the documented columns and types (docs/results.md).
    #[test]
    fn rebuild_writes_the_documented_schema() {
        let dir = tempfile::tempdir().unwrap();
        let sweep = dir.path();
        let a = write_trial(
            sweep,
            "aaa",
            0,
            "\"model.reduction\" = 16\n\"model.placement\" = \"post_bn\"",
            TrialState::Completed,
        );
        let b = write_trial(
            sweep,
            "bbb",
            1,
            "\"model.reduction\" = 0.5",
            TrialState::Failed,
        );
        fs::create_dir_all(sweep.join("trials").join("not-a-trial")).unwrap();
        lines(
            &a.join(files::EPOCHS),
            &[epoch(1, 0.3), epoch(2, 0.6)],
            false,
        );
        lines(&b.join(files::EPOCHS), &[epoch(1, 0.2)], true);
        let its: Vec<IterationLine> = (0..4)
            .map(|i| IterationLine {
                epoch: i / 2 + 1,
                step: i % 2,
                iteration: i as u64,
                loss: 2.0,
            })
            .collect();
        lines(&a.join(files::ITERATIONS), &its, false);
        let fin = FinalJson {
            outcome: TrialState::Completed,
            epochs_done: 2,
            final_test_acc: Some(0.6),
            final_test_loss: Some(1.4),
            best_test_acc: Some(0.6),
            params: 1000,
            macs: 2000,
            classes: (0..3)
                .map(|c| ClassLine {
                    class_index: c,
                    class: format!("c{c}"),
                    correct: 1,
                    total: 2,
                    confusion: vec![1, 1, 0],
                })
                .collect(),
            error: None,
        };
        write_json_atomic(&a.join(files::FINAL), &fin).unwrap();
        let inside = InsideJson {
            gates: vec![GateBlock {
                block: 1,
                mean_gate: vec![vec![0.5; 4]; 3],
            }],
            samples: vec![SampleImage {
                sample: 0,
                class_index: 2,
                class: "c2".into(),
                predicted: 1,
                height: 2,
                width: 2,
                pixels: vec![7; 12],
            }],
            feature_maps: vec![FeatureMap {
                sample: 0,
                block: 1,
                channel: 0,
                height: 2,
                width: 2,
                values: vec![0.25; 4],
            }],
        };
        write_json_atomic(&a.join(files::INSIDE), &inside).unwrap();

        let sum = rebuild(sweep).unwrap();
        assert_eq!(
            sum,
            RebuildSummary {
                trials: 2,
                epochs: 3,
                iterations: 4,
                classes: 3,
                gates: 12,
                samples: 1,
                feature_maps: 1
            }
        );
        // Every table as the schema defines it, read back through it.
        let read = |table: &'static TableDef| {
            let lf = ablate_schema::scan_table(sweep, table).unwrap().unwrap();
            let df = lf.collect().unwrap();
            ablate_schema::check_columns(table, df.schema(), ExtraColumns::Refuse).unwrap();
            df
        };
        for table in tables::ALL {
            read(table);
        }
        let t = read(&tables::TRIALS);
        let axis = |k: &str| t.column(&format!("axis.{k}")).unwrap().dtype().clone();
        assert_eq!(
            axis("model.reduction"),
            DataType::Float64,
            "int and float mix"
        );
        assert_eq!(axis("model.placement"), DataType::String);
        let rows = ablate_schema::trials_from_frame(&t).unwrap();
        let (a, b) = (&rows[0], &rows[1]);
        assert_eq!(
            a.axes.get("model.placement"),
            Some(&AxisValue::Str("post_bn".into()))
        );
        assert_eq!(
            b.axes.get("model.placement"),
            None,
            "not swept by that trial"
        );
        assert_eq!((a.best_test_acc, b.best_test_acc), (Some(0.6), Some(0.2)));
        assert_eq!((a.epochs_done, b.epochs_done), (2, 1));
        assert_eq!((a.params, b.params), (Some(1000), None));
        assert_eq!((a.epochs_planned, a.attention.as_str()), (2, "se"));
        assert_eq!(
            (a.status, b.status),
            (TrialState::Completed, TrialState::Failed)
        );
        assert!((a.images_per_sec.unwrap() - 200.0).abs() < 1e-9);
        let classes = ablate_schema::classes_from_frame(&read(&tables::CLASSES)).unwrap();
        assert_eq!(classes[0].1.accuracy(), 0.5);
        // no temporary files left behind
        let leftovers: Vec<_> = fs::read_dir(sweep)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn an_empty_sweep_writes_empty_tables() {
        let dir = tempfile::tempdir().unwrap();
        let sum = rebuild(dir.path()).unwrap();
        assert_eq!(sum, RebuildSummary::default());
        for table in tables::ALL {
            let df = ablate_schema::scan_table(dir.path(), table)
                .unwrap()
                .unwrap()
                .collect()
                .unwrap();
            assert_eq!(df.height(), 0);
            ablate_schema::check_columns(table, df.schema(), ExtraColumns::Refuse).unwrap();
        }
    }
}
