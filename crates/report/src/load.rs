//! Reading the sweep's Parquet files (docs/results.md, schema version 1).
//!
//! Small files (`trials`, `classes`) are collected whole; the large ones
//! (`iterations`, `epochs`, `gates`, `feature_maps`) are scanned lazily and
//! reduced in polars (joins, group-bys, filters) before anything reaches Rust
//! vectors, so memory stays bounded by the size of the aggregates.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::ReportError;

/// The Parquet schema version this crate reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Value of one swept key (`axis.<key>` column) for one trial.
#[derive(Debug, Clone, PartialEq)]
pub enum AxisValue {
    /// The trial's grid does not sweep this key.
    Null,
    /// Integer value.
    Int(i64),
    /// Float value.
    Float(f64),
    /// Boolean value.
    Bool(bool),
    /// String value.
    Str(String),
}

impl AxisValue {
    /// Numeric value of an integer or float axis.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AxisValue::Int(v) => Some(*v as f64),
            AxisValue::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for AxisValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AxisValue::Null => f.write_str(""),
            AxisValue::Int(v) => write!(f, "{v}"),
            AxisValue::Float(v) => write!(f, "{v}"),
            AxisValue::Bool(v) => write!(f, "{v}"),
            AxisValue::Str(v) => f.write_str(v),
        }
    }
}

/// One row of trials.parquet.
#[derive(Debug, Clone)]
pub struct Trial {
    pub experiment: String,
    pub trial_id: String,
    pub variant_id: String,
    pub variant: String,
    pub seed: u64,
    pub attention: String,
    /// `(key without the "axis." prefix, value)` in column order.
    pub axes: Vec<(String, AxisValue)>,
    pub status: String,
    pub attempts: u32,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub epochs_planned: Option<u32>,
    pub epochs_done: Option<u32>,
    pub final_test_acc: Option<f64>,
    pub best_test_acc: Option<f64>,
    pub train_seconds: Option<f64>,
    pub images_per_sec: Option<f64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

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

/// Per-class results of one trial (final model, test split).
#[derive(Debug, Clone)]
pub struct ClassRow {
    pub trial_id: String,
    pub class_index: u32,
    pub class: String,
    pub accuracy: f64,
    pub confusion: Vec<u64>,
}

/// Mean gate of one channel for one class in one block.
#[derive(Debug, Clone, Copy)]
pub struct GateRow {
    pub block: u32,
    pub class_index: u32,
    pub channel: u32,
    pub mean_gate: f64,
}

/// One test image shown in the feature-map chart.
#[derive(Debug, Clone)]
pub struct SampleImage {
    pub sample: u32,
    pub class: String,
    pub predicted: u32,
    pub height: u32,
    pub width: u32,
    /// `[3, H, W]` channel-major, un-normalized.
    pub pixels: Vec<u8>,
}

/// One channel of one block's conv output on one sample.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    pub sample: u32,
    pub block: u32,
    pub channel: u32,
    pub height: u32,
    pub width: u32,
    pub values: Vec<f32>,
}

/// The Parquet files of one results folder.
#[derive(Debug, Clone)]
pub struct Sources {
    pub dir: PathBuf,
}

fn perr(path: &Path) -> impl FnOnce(PolarsError) -> ReportError + '_ {
    move |source| ReportError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn col_err(path: &Path, column: &str, problem: impl Into<String>) -> ReportError {
    ReportError::Column {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem: problem.into(),
    }
}

impl Sources {
    /// The path of `<name>.parquet` in the results folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.parquet"))
    }

    /// Lazily scans `<name>.parquet` if it exists, after checking its
    /// `schema_version` column (a cheap min/max query on one column).
    pub fn scan(&self, name: &str) -> Result<Option<(LazyFrame, PathBuf)>, ReportError> {
        let path = self.file(name);
        if !path.is_file() {
            return Ok(None);
        }
        let pl_path = PlRefPath::try_from_path(&path).map_err(perr(&path))?;
        let lf =
            LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default()).map_err(perr(&path))?;
        let schema = lf.clone().collect_schema().map_err(perr(&path))?;
        if schema.get("schema_version").is_none() {
            return Err(col_err(&path, "schema_version", "is missing"));
        }
        let versions = lf
            .clone()
            .select([
                col("schema_version")
                    .cast(DataType::UInt32)
                    .min()
                    .alias("lo"),
                col("schema_version")
                    .cast(DataType::UInt32)
                    .max()
                    .alias("hi"),
            ])
            .collect()
            .map_err(perr(&path))?;
        for name in ["lo", "hi"] {
            let v = versions
                .column(name)
                .and_then(|c| c.u32().map(|ca| ca.get(0)))
                .map_err(perr(&path))?;
            if let Some(v) = v {
                if v != SCHEMA_VERSION {
                    return Err(ReportError::SchemaVersion {
                        path,
                        found: v,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
        }
        Ok(Some((lf, path)))
    }
}

/// Typed access to the columns of a collected frame, with errors naming the file.
struct Cols<'a> {
    df: &'a DataFrame,
    path: &'a Path,
}

impl<'a> Cols<'a> {
    fn get(&self, name: &str, dtype: DataType) -> Result<Column, ReportError> {
        let c = self
            .df
            .column(name)
            .map_err(|_| col_err(self.path, name, "is missing"))?;
        c.cast(&dtype)
            .map_err(|e| col_err(self.path, name, format!("cannot be read as {dtype}: {e}")))
    }

    fn strings(&self, name: &str) -> Result<Vec<Option<String>>, ReportError> {
        let c = self.get(name, DataType::String)?;
        let ca = c.str().map_err(perr(self.path))?;
        Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
    }

    fn required_strings(&self, name: &str) -> Result<Vec<String>, ReportError> {
        self.strings(name)?
            .into_iter()
            .map(|v| v.ok_or_else(|| col_err(self.path, name, "has a null value")))
            .collect()
    }

    fn u64s(&self, name: &str) -> Result<Vec<Option<u64>>, ReportError> {
        let c = self.get(name, DataType::UInt64)?;
        Ok(c.u64().map_err(perr(self.path))?.iter().collect())
    }

    fn u32s(&self, name: &str) -> Result<Vec<Option<u32>>, ReportError> {
        let c = self.get(name, DataType::UInt32)?;
        Ok(c.u32().map_err(perr(self.path))?.iter().collect())
    }

    fn i32s(&self, name: &str) -> Result<Vec<Option<i32>>, ReportError> {
        let c = self.get(name, DataType::Int32)?;
        Ok(c.i32().map_err(perr(self.path))?.iter().collect())
    }

    fn f64s(&self, name: &str) -> Result<Vec<Option<f64>>, ReportError> {
        let c = self.get(name, DataType::Float64)?;
        Ok(c.f64().map_err(perr(self.path))?.iter().collect())
    }

    /// A list column of numbers as one `Vec` per row (`None` for a null row); a null inside a
    /// list reads as `null`.
    fn lists<T>(
        &self,
        name: &str,
        null: T::Native,
    ) -> Result<Vec<Option<Vec<T::Native>>>, ReportError>
    where
        T: PolarsNumericType + PolarsPhysicalType,
    {
        let c = self.get(name, DataType::List(Box::new(T::get_static_dtype())))?;
        let ca = c.list().map_err(perr(self.path))?;
        let mut out = Vec::with_capacity(ca.len());
        for row in ca.amortized_iter() {
            out.push(match row {
                Some(s) => Some(
                    s.as_ref()
                        .unpack::<T>()
                        .map_err(perr(self.path))?
                        .iter()
                        .map(|v| v.unwrap_or(null))
                        .collect(),
                ),
                None => None,
            });
        }
        Ok(out)
    }

    fn axis(&self, name: &str) -> Result<Vec<AxisValue>, ReportError> {
        let c = self
            .df
            .column(name)
            .map_err(|_| col_err(self.path, name, "is missing"))?;
        let out = match c.dtype() {
            DataType::Boolean => c
                .bool()
                .map_err(perr(self.path))?
                .iter()
                .map(|v| v.map_or(AxisValue::Null, AxisValue::Bool))
                .collect(),
            DataType::Float32 | DataType::Float64 => self
                .f64s(name)?
                .into_iter()
                .map(|v| v.map_or(AxisValue::Null, AxisValue::Float))
                .collect(),
            dt if dt.is_integer() => {
                let c = self.get(name, DataType::Int64)?;
                c.i64()
                    .map_err(perr(self.path))?
                    .iter()
                    .map(|v| v.map_or(AxisValue::Null, AxisValue::Int))
                    .collect()
            }
            _ => self
                .strings(name)?
                .into_iter()
                .map(|v| v.map_or(AxisValue::Null, AxisValue::Str))
                .collect(),
        };
        Ok(out)
    }
}

/// Reads trials.parquet (required).
pub fn read_trials(src: &Sources) -> Result<Vec<Trial>, ReportError> {
    let Some((lf, path)) = src.scan("trials")? else {
        return Err(ReportError::MissingTrials {
            dir: src.dir.clone(),
        });
    };
    let df = lf.collect().map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let n = df.height();
    let experiment = c.strings("experiment")?;
    let trial_id = c.required_strings("trial_id")?;
    let variant_id = c.required_strings("variant_id")?;
    let variant = c.strings("variant")?;
    let seed = c.u64s("seed")?;
    let attention = c.strings("attention")?;
    let status = c.required_strings("status")?;
    let attempts = c.u32s("attempts")?;
    let params = c.u64s("params")?;
    let macs = c.u64s("macs")?;
    let epochs_planned = c.u32s("epochs_planned")?;
    let epochs_done = c.u32s("epochs_done")?;
    let final_test_acc = c.f64s("final_test_acc")?;
    let best_test_acc = c.f64s("best_test_acc")?;
    let train_seconds = c.f64s("train_seconds")?;
    let images_per_sec = c.f64s("images_per_sec")?;
    let exit_code = c.i32s("exit_code")?;
    let error = c.strings("error")?;
    let axis_names: Vec<String> = df
        .get_column_names()
        .into_iter()
        .filter(|n| n.starts_with("axis."))
        .map(|n| n.to_string())
        .collect();
    let mut axis_values = Vec::with_capacity(axis_names.len());
    for name in &axis_names {
        axis_values.push(c.axis(name)?);
    }
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let mut trials = Vec::with_capacity(n);
    for i in 0..n {
        trials.push(Trial {
            experiment: experiment[i].clone().unwrap_or_default(),
            trial_id: trial_id[i].clone(),
            variant_id: variant_id[i].clone(),
            variant: variant[i].clone().unwrap_or_else(|| variant_id[i].clone()),
            seed: seed[i].ok_or_else(|| col_err(&path, "seed", "has a null value"))?,
            attention: attention[i].clone().unwrap_or_else(|| "none".to_string()),
            axes: axis_names
                .iter()
                .zip(&axis_values)
                .map(|(name, vals)| (name["axis.".len()..].to_string(), vals[i].clone()))
                .collect(),
            status: status[i].clone(),
            attempts: attempts[i].unwrap_or(0),
            params: params[i],
            macs: macs[i],
            epochs_planned: epochs_planned[i],
            epochs_done: epochs_done[i],
            final_test_acc: finite(final_test_acc[i]),
            best_test_acc: finite(best_test_acc[i]),
            train_seconds: finite(train_seconds[i]),
            images_per_sec: finite(images_per_sec[i]),
            exit_code: exit_code[i],
            error: error[i].clone(),
        });
    }
    Ok(trials)
}

/// A lazy two-column frame `trial_id -> variant_id` for joins.
pub fn trial_map(pairs: &[(&str, &str)]) -> Result<LazyFrame, PolarsError> {
    let t: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let v: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let df = DataFrame::new_infer_height(vec![
        Column::new("trial_id".into(), t),
        Column::new("variant_id".into(), v),
    ])?;
    Ok(df.lazy())
}

/// Mean seconds per epoch and mean images/s of one trial.
pub type EpochTiming = (Option<f64>, Option<f64>);

/// Per-trial epoch timing, by trial id.
pub fn read_epoch_timing(src: &Sources) -> Result<HashMap<String, EpochTiming>, ReportError> {
    let Some((lf, path)) = src.scan("epochs")? else {
        return Ok(HashMap::new());
    };
    let df = lf
        .group_by([col("trial_id")])
        .agg([
            col("seconds").cast(DataType::Float64).mean().alias("s"),
            col("images_per_sec")
                .cast(DataType::Float64)
                .mean()
                .alias("ips"),
        ])
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let ids = c.required_strings("trial_id")?;
    let s = c.f64s("s")?;
    let ips = c.f64s("ips")?;
    Ok(ids
        .into_iter()
        .zip(s.into_iter().zip(ips))
        .map(|(id, (s, i))| {
            (
                id,
                (s.filter(|v| v.is_finite()), i.filter(|v| v.is_finite())),
            )
        })
        .collect())
}

/// Epoch curves per variant: mean, min and max across the given trials.
pub fn read_epoch_curves(
    src: &Sources,
    map: &[(&str, &str)],
) -> Result<BTreeMap<String, Vec<EpochPoint>>, ReportError> {
    let Some((lf, path)) = src.scan("epochs")? else {
        return Ok(BTreeMap::new());
    };
    let metrics = ["train_loss", "train_acc", "test_loss", "test_acc"];
    let mut aggs = Vec::new();
    for m in metrics {
        // Non-finite values (a diverging epoch) would break the axis ranges.
        let v = col(m).cast(DataType::Float64);
        let v = v.clone().filter(v.is_finite());
        aggs.push(v.clone().mean().alias(format!("{m}_mean")));
        aggs.push(v.clone().min().alias(format!("{m}_min")));
        aggs.push(v.max().alias(format!("{m}_max")));
    }
    let df = lf
        .select(
            [col("trial_id"), col("epoch").cast(DataType::UInt32)]
                .into_iter()
                .chain(metrics.iter().map(|m| col(*m)))
                .collect::<Vec<_>>(),
        )
        .inner_join(
            trial_map(map).map_err(perr(&path))?,
            col("trial_id"),
            col("trial_id"),
        )
        .group_by([col("variant_id"), col("epoch")])
        .agg(aggs)
        .sort(["variant_id", "epoch"], SortMultipleOptions::default())
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let variants = c.required_strings("variant_id")?;
    let epochs = c.u32s("epoch")?;
    let mut cols = Vec::new();
    for m in metrics {
        cols.push((
            c.f64s(&format!("{m}_mean"))?,
            c.f64s(&format!("{m}_min"))?,
            c.f64s(&format!("{m}_max"))?,
        ));
    }
    let band = |k: usize, i: usize| -> Option<Band> {
        let (mean, min, max) = &cols[k];
        Some(Band {
            mean: mean[i]?,
            min: min[i]?,
            max: max[i]?,
        })
    };
    let mut out: BTreeMap<String, Vec<EpochPoint>> = BTreeMap::new();
    for i in 0..df.height() {
        let Some(epoch) = epochs[i] else { continue };
        let empty = Band {
            mean: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
        out.entry(variants[i].clone())
            .or_default()
            .push(EpochPoint {
                epoch,
                train_loss: band(0, i).unwrap_or(empty),
                train_acc: band(1, i).unwrap_or(empty),
                test_loss: band(2, i).unwrap_or(empty),
                test_acc: band(3, i).unwrap_or(empty),
            });
    }
    Ok(out)
}

/// Training loss per iteration per variant, averaged across the given
/// trials and over bins of consecutive iterations so that each variant has at
/// most `max_points` points: `(iteration, loss)` sorted by iteration.
pub fn read_loss_curves(
    src: &Sources,
    map: &[(&str, &str)],
    max_points: usize,
) -> Result<BTreeMap<String, Vec<(f64, f64)>>, ReportError> {
    let Some((lf, path)) = src.scan("iterations")? else {
        return Ok(BTreeMap::new());
    };
    let max_iter = lf
        .clone()
        .select([col("iteration").cast(DataType::UInt64).max().alias("m")])
        .collect()
        .map_err(perr(&path))?;
    let max_iter = max_iter
        .column("m")
        .and_then(|c| c.u64().map(|ca| ca.get(0)))
        .map_err(perr(&path))?;
    let Some(max_iter) = max_iter else {
        return Ok(BTreeMap::new());
    };
    let width = ((max_iter + 1) as f64 / max_points.max(1) as f64)
        .ceil()
        .max(1.0);
    let loss = col("loss").cast(DataType::Float64);
    let df = lf
        .select([
            col("trial_id"),
            col("iteration").cast(DataType::Float64).alias("it"),
            loss.clone().alias("loss"),
        ])
        .filter(col("loss").is_finite())
        .inner_join(
            trial_map(map).map_err(perr(&path))?,
            col("trial_id"),
            col("trial_id"),
        )
        .with_column((col("it") / lit(width)).cast(DataType::UInt64).alias("bin"))
        .group_by([col("variant_id"), col("bin")])
        .agg([col("it").mean().alias("x"), col("loss").mean().alias("y")])
        .sort(["variant_id", "bin"], SortMultipleOptions::default())
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let variants = c.required_strings("variant_id")?;
    let xs = c.f64s("x")?;
    let ys = c.f64s("y")?;
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..df.height() {
        if let (Some(x), Some(y)) = (xs[i], ys[i]) {
            out.entry(variants[i].clone()).or_default().push((x, y));
        }
    }
    Ok(out)
}

/// The rows of `<name>.parquet` that belong to the given trials (lazy), with its path;
/// `None` when the file does not exist.
fn scan_trials(
    src: &Sources,
    name: &str,
    trial_ids: &[&str],
) -> Result<Option<(LazyFrame, PathBuf)>, ReportError> {
    let Some((lf, path)) = src.scan(name)? else {
        return Ok(None);
    };
    let ids: Vec<(&str, &str)> = trial_ids.iter().map(|t| (*t, *t)).collect();
    let lf = lf.inner_join(
        trial_map(&ids).map_err(perr(&path))?,
        col("trial_id"),
        col("trial_id"),
    );
    Ok(Some((lf, path)))
}

/// classes.parquet rows of the given trials.
pub fn read_classes(src: &Sources, trial_ids: &[&str]) -> Result<Vec<ClassRow>, ReportError> {
    let Some((lf, path)) = scan_trials(src, "classes", trial_ids)? else {
        return Ok(Vec::new());
    };
    let df = lf
        .sort(["trial_id", "class_index"], SortMultipleOptions::default())
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let tid = c.required_strings("trial_id")?;
    let idx = c.u32s("class_index")?;
    let class = c.strings("class")?;
    let acc = c.f64s("accuracy")?;
    let conf = c.lists::<UInt64Type>("confusion", 0)?;
    let mut out = Vec::with_capacity(df.height());
    for (i, row) in conf.into_iter().enumerate() {
        let (Some(class_index), Some(accuracy)) = (idx[i], acc[i]) else {
            continue;
        };
        let confusion = row.unwrap_or_default();
        out.push(ClassRow {
            trial_id: tid[i].clone(),
            class_index,
            class: class[i].clone().unwrap_or_else(|| class_index.to_string()),
            accuracy,
            confusion,
        });
    }
    Ok(out)
}

/// Trial ids that have rows in `<name>.parquet`.
pub fn trials_with_rows(src: &Sources, name: &str) -> Result<Vec<String>, ReportError> {
    let Some((lf, path)) = src.scan(name)? else {
        return Ok(Vec::new());
    };
    let df = lf
        .select([col("trial_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let mut ids = c.required_strings("trial_id")?;
    ids.sort();
    Ok(ids)
}

/// Mean gate per (block, class, channel) averaged across the given trials.
pub fn read_gates(src: &Sources, trial_ids: &[&str]) -> Result<Vec<GateRow>, ReportError> {
    let Some((lf, path)) = scan_trials(src, "gates", trial_ids)? else {
        return Ok(Vec::new());
    };
    let df = lf
        .group_by([
            col("block").cast(DataType::UInt32),
            col("class_index").cast(DataType::UInt32),
            col("channel").cast(DataType::UInt32),
        ])
        .agg([col("mean_gate").cast(DataType::Float64).mean().alias("g")])
        .sort(
            ["block", "class_index", "channel"],
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let block = c.u32s("block")?;
    let class = c.u32s("class_index")?;
    let channel = c.u32s("channel")?;
    let g = c.f64s("g")?;
    Ok((0..df.height())
        .filter_map(|i| {
            Some(GateRow {
                block: block[i]?,
                class_index: class[i]?,
                channel: channel[i]?,
                mean_gate: g[i].filter(|v| v.is_finite())?,
            })
        })
        .collect())
}

/// The first `n` samples of one trial (samples.parquet).
pub fn read_samples(
    src: &Sources,
    trial_id: &str,
    n: usize,
) -> Result<Vec<SampleImage>, ReportError> {
    let Some((lf, path)) = src.scan("samples")? else {
        return Ok(Vec::new());
    };
    let df = lf
        .filter(
            col("trial_id")
                .eq(lit(trial_id))
                .and(col("sample").cast(DataType::UInt32).lt(lit(n as u32))),
        )
        .sort(["sample"], SortMultipleOptions::default())
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let sample = c.u32s("sample")?;
    let class = c.strings("class")?;
    let class_index = c.u32s("class_index")?;
    let predicted = c.u32s("predicted")?;
    let h = c.u32s("height")?;
    let w = c.u32s("width")?;
    let pixels = c.lists::<UInt8Type>("pixels", 0)?;
    let mut out = Vec::new();
    for (i, px) in pixels.into_iter().enumerate() {
        let (Some(sample), Some(height), Some(width), Some(px)) = (sample[i], h[i], w[i], px)
        else {
            continue;
        };
        if px.len() != 3 * height as usize * width as usize {
            return Err(col_err(
                &path,
                "pixels",
                format!(
                    "has {} values for a 3x{height}x{width} image (trial {trial_id}, sample {sample})",
                    px.len()
                ),
            ));
        }
        out.push(SampleImage {
            sample,
            class: class[i]
                .clone()
                .or_else(|| class_index[i].map(|c| c.to_string()))
                .unwrap_or_default(),
            predicted: predicted[i].unwrap_or(u32::MAX),
            height,
            width,
            pixels: px,
        });
    }
    Ok(out)
}

/// Feature maps of one trial: samples `< n`, channels `< channels`.
pub fn read_feature_maps(
    src: &Sources,
    trial_id: &str,
    n: usize,
    channels: u32,
) -> Result<Vec<FeatureMap>, ReportError> {
    let Some((lf, path)) = src.scan("feature_maps")? else {
        return Ok(Vec::new());
    };
    let df = lf
        .filter(
            col("trial_id")
                .eq(lit(trial_id))
                .and(col("sample").cast(DataType::UInt32).lt(lit(n as u32)))
                .and(col("channel").cast(DataType::UInt32).lt(lit(channels))),
        )
        .sort(
            ["sample", "block", "channel"],
            SortMultipleOptions::default(),
        )
        .collect()
        .map_err(perr(&path))?;
    let c = Cols {
        df: &df,
        path: &path,
    };
    let sample = c.u32s("sample")?;
    let block = c.u32s("block")?;
    let channel = c.u32s("channel")?;
    let h = c.u32s("height")?;
    let w = c.u32s("width")?;
    let values = c.lists::<Float32Type>("values", f32::NAN)?;
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        let (Some(sample), Some(block), Some(channel), Some(height), Some(width), Some(v)) =
            (sample[i], block[i], channel[i], h[i], w[i], v)
        else {
            continue;
        };
        if v.len() != height as usize * width as usize {
            return Err(col_err(
                &path,
                "values",
                format!(
                    "has {} values for a {height}x{width} map (trial {trial_id}, sample {sample}, block {block}, channel {channel})",
                    v.len()
                ),
            ));
        }
        out.push(FeatureMap {
            sample,
            block,
            channel,
            height,
            width,
            values: v,
        });
    }
    Ok(out)
}
