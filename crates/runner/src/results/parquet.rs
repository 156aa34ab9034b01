//! Rebuilds a sweep's Parquet files (docs/results.md, schema version 1) from its trial folders.
//!
//! The trial folders are the source of truth; every Parquet file is derived from them, written to
//! a temporary file in the sweep folder and renamed over the old one, so a reader never sees a
//! half-written file and a killed runner loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use super::damage;
use super::records::{
    files, read_jsonl_prefix, AxisValue, EpochLine, FinalJson, InsideJson, IterationLine,
    RecordError, TrialMeta, TrialState, TrialStatus, SCHEMA_VERSION,
};

/// Errors rebuilding the Parquet files.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// A trial record could not be read.
    #[error("cannot read the records of trial folder {dir}")]
    Record {
        /// The trial folder.
        dir: PathBuf,
        /// The cause (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<RecordError>,
    },
    /// A folder could not be listed or a file could not be written.
    #[error("cannot access {path}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// polars refused to build or write a frame.
    #[error("cannot write {path}")]
    Polars {
        /// The Parquet file.
        path: PathBuf,
        /// The cause (boxed: it is large).
        #[source]
        source: Box<PolarsError>,
    },
}

/// Everything read from one trial folder.
#[derive(Debug, Clone)]
pub struct TrialRecords {
    /// The trial folder.
    pub dir: PathBuf,
    /// `trial.json`.
    pub meta: TrialMeta,
    /// `status.json` (pending when absent).
    pub status: TrialStatus,
    /// `config.toml` as text.
    pub config: String,
    /// `epochs.jsonl`.
    pub epochs: Vec<EpochLine>,
    /// `iterations.jsonl`.
    pub iterations: Vec<IterationLine>,
    /// `final.json`, when written.
    pub final_json: Option<FinalJson>,
    /// `inside.json`, when written.
    pub inside: Option<InsideJson>,
}

impl TrialRecords {
    /// Reads a trial folder. Returns `Ok(None)` for a folder without `config.toml` (not a
    /// trial).
    pub fn read(dir: &Path) -> Result<Option<Self>, ParquetError> {
        let rec = |source| ParquetError::Record {
            dir: dir.to_path_buf(),
            source: Box::new(source),
        };
        let config_path = dir.join(files::CONFIG);
        let config = match fs::read_to_string(&config_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ParquetError::Io {
                    path: config_path,
                    source: e,
                })
            }
        };
        let meta = TrialMeta::from_config_toml(&config_path, &config).map_err(rec)?;
        let mut status = damage::read_status(&dir.join(files::STATUS))
            .map_err(rec)?
            .unwrap_or_else(TrialStatus::pending);
        // Damaged records: the intact ones before them are kept, the trial runs again.
        let mut problems = Vec::new();
        let (mut epochs, e) =
            read_jsonl_prefix::<EpochLine>(&dir.join(files::EPOCHS)).map_err(rec)?;
        let (mut iterations, i) =
            read_jsonl_prefix::<IterationLine>(&dir.join(files::ITERATIONS)).map_err(rec)?;
        problems.extend(e.into_iter().chain(i).map(|e| e.to_string()));
        // A child killed between writing records and its checkpoint may leave records that the
        // resumed run rewrites; the files are truncated on resume, and the last record of an
        // epoch wins here too so the tables never hold duplicates.
        dedup_by_key(&mut epochs, |e| e.epoch as u64);
        dedup_by_key(&mut iterations, |i| i.iteration);
        let final_json =
            damage::read_record_opt(&dir.join(files::FINAL), &mut problems).map_err(rec)?;
        let inside =
            damage::read_record_opt(&dir.join(files::INSIDE), &mut problems).map_err(rec)?;
        if problems.is_empty() {
            damage::check_complete(dir, &status, epochs.len(), iterations.len(), &mut problems);
        }
        if !problems.is_empty() {
            damage::mark_for_rerun(dir, &mut status, &problems.join("; "));
        }
        Ok(Some(Self {
            dir: dir.to_path_buf(),
            meta,
            status,
            config,
            epochs,
            iterations,
            final_json,
            inside,
        }))
    }
}

/// Keeps the last record per key, ordered by key.
fn dedup_by_key<T: Copy>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    if v.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        return;
    }
    let mut map = BTreeMap::new();
    for x in v.iter() {
        map.insert(key(x), *x);
    }
    *v = map.into_values().collect();
}

/// Lists the trial folders of a sweep (`<sweep>/trials/*/`), sorted by name.
pub fn trial_dirs(sweep_dir: &Path) -> Result<Vec<PathBuf>, ParquetError> {
    let trials = sweep_dir.join("trials");
    let rd = match fs::read_dir(&trials) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ParquetError::Io {
                path: trials,
                source: e,
            })
        }
    };
    let mut dirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| ParquetError::Io {
            path: trials.clone(),
            source: e,
        })?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
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

/// Writes the seven Parquet files of `records` into `sweep_dir`, as a set: all seven are
/// written to temporary files first and renamed only once every one is complete, so a failure
/// (a full disk) leaves the previous set whole.
pub fn write_all(
    sweep_dir: &Path,
    records: &[TrialRecords],
) -> Result<RebuildSummary, ParquetError> {
    type BuildFrame = fn(&[TrialRecords]) -> PolarsResult<DataFrame>;
    let frames: [(&str, BuildFrame); 7] = [
        ("trials.parquet", trials_frame),
        ("epochs.parquet", epochs_frame),
        ("iterations.parquet", iterations_frame),
        ("classes.parquet", classes_frame),
        ("gates.parquet", gates_frame),
        ("samples.parquet", samples_frame),
        ("feature_maps.parquet", feature_maps_frame),
    ];
    let written = frames[..]
        .par_iter()
        .map(|(name, build)| {
            let path = sweep_dir.join(name);
            let mut df = build(records).map_err(|source| ParquetError::Polars {
                path: path.clone(),
                source: Box::new(source),
            })?;
            let tmp = write_parquet_tmp(&path, &mut df)?;
            Ok((path, tmp, df.height()))
        })
        .collect::<Result<Vec<_>, ParquetError>>()?;
    let mut heights = Vec::with_capacity(written.len());
    for (path, tmp, height) in written {
        tmp.persist(&path).map_err(|e| ParquetError::Io {
            path: path.clone(),
            source: e.error,
        })?;
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

/// Writes `df` to `path` through a temporary file in the same folder and a rename.
pub fn write_parquet_atomic(path: &Path, df: &mut DataFrame) -> Result<(), ParquetError> {
    let tmp = write_parquet_tmp(path, df)?;
    tmp.persist(path).map_err(|e| ParquetError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes `df` to a synced temporary file beside `path` (removed when dropped unpersisted).
fn write_parquet_tmp(
    path: &Path,
    df: &mut DataFrame,
) -> Result<tempfile::NamedTempFile, ParquetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |source| ParquetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".parquet")
        .tempfile_in(dir)
        .map_err(io)?;
    // Default compression: zstd.
    ParquetWriter::new(tmp.as_file())
        .finish(df)
        .map_err(|source| ParquetError::Polars {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    tmp.as_file().sync_all().map_err(io)?;
    Ok(tmp)
}

fn col<T, P: ?Sized>(name: &str, values: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Column::new(name.into(), values)
}

fn version_col(height: usize) -> Column {
    col("schema_version", vec![SCHEMA_VERSION; height])
}

fn list_col<T>(name: &str, dtype: DataType, lists: &[&[T::Native]]) -> Column
where
    T: PolarsNumericType,
{
    let values: usize = lists.iter().map(|l| l.len()).sum();
    let mut b = ListPrimitiveChunkedBuilder::<T>::new(name.into(), lists.len(), values, dtype);
    for l in lists {
        b.append_slice(l);
    }
    b.finish().into_series().into_column()
}

/// The Parquet type of a swept key, inferred from its values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AxisType {
    Int,
    Float,
    Bool,
    Str,
}

fn axis_type(values: impl Iterator<Item = AxisValue>) -> AxisType {
    let mut t: Option<AxisType> = None;
    for v in values {
        let vt = match v {
            AxisValue::Int(_) => AxisType::Int,
            AxisValue::Float(_) => AxisType::Float,
            AxisValue::Bool(_) => AxisType::Bool,
            AxisValue::Str(_) => AxisType::Str,
        };
        t = Some(match (t, vt) {
            (None, x) => x,
            (Some(a), b) if a == b => a,
            (Some(AxisType::Int), AxisType::Float) | (Some(AxisType::Float), AxisType::Int) => {
                AxisType::Float
            }
            _ => AxisType::Str,
        });
    }
    t.unwrap_or(AxisType::Str)
}

fn axis_column(name: &str, values: Vec<Option<&AxisValue>>) -> Column {
    match axis_type(values.iter().flatten().map(|v| (*v).clone())) {
        AxisType::Int => col(
            name,
            values
                .iter()
                .map(|v| match v {
                    Some(AxisValue::Int(i)) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        AxisType::Float => col(
            name,
            values
                .iter()
                .map(|v| match v {
                    Some(AxisValue::Int(i)) => Some(*i as f64),
                    Some(AxisValue::Float(x)) => Some(*x),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        AxisType::Bool => col(
            name,
            values
                .iter()
                .map(|v| match v {
                    Some(AxisValue::Bool(b)) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        ),
        AxisType::Str => col(
            name,
            values
                .iter()
                .map(|v| v.map(|v| v.to_string()))
                .collect::<Vec<_>>(),
        ),
    }
}

/// Summary numbers of one trial derived from its records.
struct Derived {
    epochs_done: u32,
    final_test_acc: Option<f64>,
    best_test_acc: Option<f64>,
    final_test_loss: Option<f64>,
    train_seconds: f64,
    images_per_sec: Option<f64>,
    params: Option<u64>,
    macs: Option<u64>,
}

fn derive(r: &TrialRecords) -> Derived {
    let last = r.epochs.last();
    let best = r
        .epochs
        .iter()
        .map(|e| e.test_acc)
        .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))));
    let secs: f64 = r.epochs.iter().map(|e| e.seconds).sum();
    let images: f64 = r.epochs.iter().map(|e| e.images_per_sec * e.seconds).sum();
    let train_seconds = if r.status.train_seconds > 0.0 {
        r.status.train_seconds
    } else {
        secs
    };
    Derived {
        epochs_done: r.epochs.len() as u32,
        final_test_acc: last.map(|e| e.test_acc),
        best_test_acc: best,
        final_test_loss: last.map(|e| e.test_loss),
        train_seconds,
        images_per_sec: (secs > 0.0).then(|| images / secs),
        params: r.final_json.as_ref().map(|f| f.params).or(r.status.params),
        macs: r.final_json.as_ref().map(|f| f.macs).or(r.status.macs),
    }
}

fn trials_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let n = records.len();
    let derived: Vec<Derived> = records.iter().map(derive).collect();
    let s = |f: fn(&TrialRecords) -> String| records.iter().map(f).collect::<Vec<String>>();
    let mut cols = vec![
        version_col(n),
        col("experiment", s(|r| r.meta.experiment.clone())),
        col("trial_id", s(|r| r.meta.trial_id.clone())),
        col("variant_id", s(|r| r.meta.variant_id.clone())),
        col("variant", s(|r| r.meta.variant.clone())),
        col(
            "seed",
            records.iter().map(|r| r.meta.seed).collect::<Vec<u64>>(),
        ),
        col("attention", s(|r| r.meta.attention.clone())),
    ];
    let axis_keys: BTreeSet<&String> = records.iter().flat_map(|r| r.meta.axes.keys()).collect();
    for key in axis_keys {
        let values = records.iter().map(|r| r.meta.axes.get(key)).collect();
        cols.push(axis_column(&format!("axis.{key}"), values));
    }
    cols.extend([
        col("status", s(|r| effective_state(r).as_str().to_string())),
        col(
            "attempts",
            records
                .iter()
                .map(|r| r.status.attempts)
                .collect::<Vec<u32>>(),
        ),
        col(
            "params",
            derived.iter().map(|d| d.params).collect::<Vec<_>>(),
        ),
        col("macs", derived.iter().map(|d| d.macs).collect::<Vec<_>>()),
        col(
            "epochs_planned",
            records
                .iter()
                .map(|r| r.meta.epochs_planned)
                .collect::<Vec<u32>>(),
        ),
        col(
            "epochs_done",
            derived.iter().map(|d| d.epochs_done).collect::<Vec<u32>>(),
        ),
        col(
            "final_test_acc",
            derived.iter().map(|d| d.final_test_acc).collect::<Vec<_>>(),
        ),
        col(
            "best_test_acc",
            derived.iter().map(|d| d.best_test_acc).collect::<Vec<_>>(),
        ),
        col(
            "final_test_loss",
            derived
                .iter()
                .map(|d| d.final_test_loss)
                .collect::<Vec<_>>(),
        ),
        col(
            "train_seconds",
            derived
                .iter()
                .map(|d| d.train_seconds)
                .collect::<Vec<f64>>(),
        ),
        col(
            "images_per_sec",
            derived.iter().map(|d| d.images_per_sec).collect::<Vec<_>>(),
        ),
        col(
            "device",
            records
                .iter()
                .map(|r| r.status.device.clone())
                .collect::<Vec<Option<String>>>(),
        ),
        col(
            "started_at",
            records
                .iter()
                .map(|r| r.status.started_at.clone())
                .collect::<Vec<Option<String>>>(),
        ),
        col(
            "ended_at",
            records
                .iter()
                .map(|r| match effective_state(r) {
                    TrialState::Running => None,
                    _ => r.status.ended_at.clone(),
                })
                .collect::<Vec<Option<String>>>(),
        ),
        col(
            "exit_code",
            records
                .iter()
                .map(|r| r.status.exit_code)
                .collect::<Vec<Option<i32>>>(),
        ),
        col(
            "error",
            records
                .iter()
                .map(|r| r.status.error.clone())
                .collect::<Vec<Option<String>>>(),
        ),
        col("config", s(|r| r.config.clone())),
    ]);
    DataFrame::new(n, cols)
}

/// The status as recorded; a trial whose record says `running` but whose `final.json` says it
/// ended is reported with the final outcome (the runner was killed before updating it).
fn effective_state(r: &TrialRecords) -> TrialState {
    match (&r.status.status, &r.final_json) {
        (TrialState::Running, Some(f)) => f.outcome,
        (s, _) => *s,
    }
}

fn epochs_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &EpochLine)> = records
        .iter()
        .flat_map(|r| r.epochs.iter().map(move |e| (r.meta.trial_id.as_str(), e)))
        .collect();
    let n = rows.len();
    let f = |g: fn(&EpochLine) -> f64| rows.iter().map(|(_, e)| g(e)).collect::<Vec<f64>>();
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col(
                "trial_id",
                rows.iter().map(|(t, _)| *t).collect::<Vec<&str>>(),
            ),
            col(
                "epoch",
                rows.iter().map(|(_, e)| e.epoch).collect::<Vec<u32>>(),
            ),
            col("train_loss", f(|e| e.train_loss)),
            col("train_acc", f(|e| e.train_acc)),
            col("test_loss", f(|e| e.test_loss)),
            col("test_acc", f(|e| e.test_acc)),
            col("lr", f(|e| e.lr)),
            col("seconds", f(|e| e.seconds)),
            col("images_per_sec", f(|e| e.images_per_sec)),
        ],
    )
}

fn iterations_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let n: usize = records.iter().map(|r| r.iterations.len()).sum();
    let mut trial = Vec::with_capacity(n);
    let mut epoch = Vec::with_capacity(n);
    let mut step = Vec::with_capacity(n);
    let mut iteration = Vec::with_capacity(n);
    let mut loss = Vec::with_capacity(n);
    for r in records {
        for i in &r.iterations {
            trial.push(r.meta.trial_id.as_str());
            epoch.push(i.epoch);
            step.push(i.step);
            iteration.push(i.iteration);
            loss.push(i.loss);
        }
    }
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col("trial_id", trial),
            col("epoch", epoch),
            col("step", step),
            col("iteration", iteration),
            col("loss", loss),
        ],
    )
}

fn classes_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &super::records::ClassLine)> = records
        .iter()
        .flat_map(|r| {
            let id = r.meta.trial_id.as_str();
            r.final_json
                .iter()
                .flat_map(move |f| f.classes.iter().map(move |c| (id, c)))
        })
        .collect();
    let n = rows.len();
    let confusion: Vec<&[u64]> = rows.iter().map(|(_, c)| c.confusion.as_slice()).collect();
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col(
                "trial_id",
                rows.iter().map(|(t, _)| *t).collect::<Vec<&str>>(),
            ),
            col(
                "class_index",
                rows.iter()
                    .map(|(_, c)| c.class_index)
                    .collect::<Vec<u32>>(),
            ),
            col(
                "class",
                rows.iter()
                    .map(|(_, c)| c.class.as_str())
                    .collect::<Vec<&str>>(),
            ),
            col(
                "accuracy",
                rows.iter()
                    .map(|(_, c)| {
                        if c.total == 0 {
                            0.0
                        } else {
                            c.correct as f64 / c.total as f64
                        }
                    })
                    .collect::<Vec<f64>>(),
            ),
            col(
                "correct",
                rows.iter().map(|(_, c)| c.correct).collect::<Vec<u64>>(),
            ),
            col(
                "total",
                rows.iter().map(|(_, c)| c.total).collect::<Vec<u64>>(),
            ),
            list_col::<UInt64Type>("confusion", DataType::UInt64, &confusion),
        ],
    )
}

fn gates_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let mut trial = Vec::new();
    let mut block = Vec::new();
    let mut class_index = Vec::new();
    let mut channel = Vec::new();
    let mut mean_gate = Vec::new();
    for r in records {
        let Some(inside) = &r.inside else { continue };
        for g in &inside.gates {
            for (c, per_channel) in g.mean_gate.iter().enumerate() {
                for (ch, v) in per_channel.iter().enumerate() {
                    trial.push(r.meta.trial_id.as_str());
                    block.push(g.block);
                    class_index.push(c as u32);
                    channel.push(ch as u32);
                    mean_gate.push(*v);
                }
            }
        }
    }
    let n = trial.len();
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col("trial_id", trial),
            col("block", block),
            col("class_index", class_index),
            col("channel", channel),
            col("mean_gate", mean_gate),
        ],
    )
}

fn samples_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &super::records::SampleImage)> = records
        .iter()
        .flat_map(|r| {
            let id = r.meta.trial_id.as_str();
            r.inside
                .iter()
                .flat_map(move |i| i.samples.iter().map(move |s| (id, s)))
        })
        .collect();
    let n = rows.len();
    let u = |g: fn(&super::records::SampleImage) -> u32| {
        rows.iter().map(|(_, s)| g(s)).collect::<Vec<u32>>()
    };
    let pixels: Vec<&[u8]> = rows.iter().map(|(_, s)| s.pixels.as_slice()).collect();
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col(
                "trial_id",
                rows.iter().map(|(t, _)| *t).collect::<Vec<&str>>(),
            ),
            col("sample", u(|s| s.sample)),
            col("class_index", u(|s| s.class_index)),
            col(
                "class",
                rows.iter()
                    .map(|(_, s)| s.class.as_str())
                    .collect::<Vec<&str>>(),
            ),
            col("predicted", u(|s| s.predicted)),
            col("height", u(|s| s.height)),
            col("width", u(|s| s.width)),
            list_col::<UInt8Type>("pixels", DataType::UInt8, &pixels),
        ],
    )
}

fn feature_maps_frame(records: &[TrialRecords]) -> PolarsResult<DataFrame> {
    let rows: Vec<(&str, &super::records::FeatureMap)> = records
        .iter()
        .flat_map(|r| {
            let id = r.meta.trial_id.as_str();
            r.inside
                .iter()
                .flat_map(move |i| i.feature_maps.iter().map(move |m| (id, m)))
        })
        .collect();
    let n = rows.len();
    let u = |g: fn(&super::records::FeatureMap) -> u32| {
        rows.iter().map(|(_, m)| g(m)).collect::<Vec<u32>>()
    };
    let values: Vec<&[f32]> = rows.iter().map(|(_, m)| m.values.as_slice()).collect();
    DataFrame::new(
        n,
        vec![
            version_col(n),
            col(
                "trial_id",
                rows.iter().map(|(t, _)| *t).collect::<Vec<&str>>(),
            ),
            col("sample", u(|m| m.sample)),
            col("block", u(|m| m.block)),
            col("channel", u(|m| m.channel)),
            col("height", u(|m| m.height)),
            col("width", u(|m| m.width)),
            list_col::<Float32Type>("values", DataType::Float32, &values),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::{
        write_json_atomic, ClassLine, FeatureMap, GateBlock, SampleImage,
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
        let read = |name: &str| {
            let f = fs::File::open(sweep.join(name)).unwrap();
            ParquetReader::new(f).finish().unwrap()
        };
        let t = read("trials.parquet");
        let dtype = |df: &DataFrame, c: &str| df.column(c).unwrap().dtype().clone();
        assert_eq!(
            dtype(&t, "axis.model.reduction"),
            DataType::Float64,
            "int and float mix"
        );
        assert_eq!(dtype(&t, "axis.model.placement"), DataType::String);
        assert_eq!(dtype(&t, "seed"), DataType::UInt64);
        assert_eq!(dtype(&t, "exit_code"), DataType::Int32);
        let placement = t.column("axis.model.placement").unwrap().str().unwrap();
        assert_eq!(placement.get(0), Some("post_bn"));
        assert_eq!(placement.get(1), None, "not swept by that trial");
        let best = t.column("best_test_acc").unwrap().f64().unwrap();
        assert_eq!((best.get(0), best.get(1)), (Some(0.6), Some(0.2)));
        let done = t.column("epochs_done").unwrap().u32().unwrap();
        assert_eq!((done.get(0), done.get(1)), (Some(2), Some(1)));
        assert_eq!(t.column("params").unwrap().u64().unwrap().get(1), None);
        assert_eq!(
            t.column("epochs_planned").unwrap().u32().unwrap().get(0),
            Some(2)
        );
        assert_eq!(
            t.column("attention").unwrap().str().unwrap().get(0),
            Some("se")
        );
        let status = t.column("status").unwrap().str().unwrap();
        assert_eq!(
            (status.get(0), status.get(1)),
            (Some("completed"), Some("failed"))
        );
        let ips = t.column("images_per_sec").unwrap().f64().unwrap();
        assert!((ips.get(0).unwrap() - 200.0).abs() < 1e-9);

        let c = read("classes.parquet");
        assert_eq!(
            dtype(&c, "confusion"),
            DataType::List(Box::new(DataType::UInt64))
        );
        assert_eq!(
            c.column("accuracy").unwrap().f64().unwrap().get(0),
            Some(0.5)
        );
        let s = read("samples.parquet");
        assert_eq!(
            dtype(&s, "pixels"),
            DataType::List(Box::new(DataType::UInt8))
        );
        let f = read("feature_maps.parquet");
        assert_eq!(
            dtype(&f, "values"),
            DataType::List(Box::new(DataType::Float32))
        );
        let g = read("gates.parquet");
        assert_eq!(dtype(&g, "mean_gate"), DataType::Float32);
        let i = read("iterations.parquet");
        assert_eq!(dtype(&i, "loss"), DataType::Float32);
        assert_eq!(dtype(&i, "iteration"), DataType::UInt64);
        for df in [&t, &c, &s, &f, &g, &i] {
            assert_eq!(dtype(df, "schema_version"), DataType::UInt32);
        }
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
        let f = fs::File::open(dir.path().join("classes.parquet")).unwrap();
        let df = ParquetReader::new(f).finish().unwrap();
        assert_eq!(df.height(), 0);
        assert_eq!(
            df.column("confusion").unwrap().dtype(),
            &DataType::List(Box::new(DataType::UInt64))
        );
    }
}
