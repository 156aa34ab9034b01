//! Frames from typed rows, one function per table, each checked against its definition before
//! it is returned, and the atomic Parquet write (a temporary file in the same folder, then a
//! rename) so a reader never sees a half-written file; several tables can be staged first and
//! renamed only once all are written, so that they are replaced as a set.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::check::{check_columns, check_nulls, ExtraColumns};
use crate::error::SchemaError;
use crate::rows::{
    AxisValue, ClassLine, EpochLine, FeatureMap, GateBlock, IterationLine, SampleImage, TrialRow,
    TrialRows,
};
use crate::tables::{
    col, TableDef, AXIS_PREFIX, CLASSES, EPOCHS, FEATURE_MAPS, GATES, ITERATIONS, SAMPLES, TRIALS,
};
use crate::SCHEMA_VERSION;

/// The columns of one table being built; [`Frame::finish`] puts them in the documented order
/// and checks them against the definition.
struct Frame {
    table: &'static TableDef,
    height: usize,
    columns: Vec<Column>,
}

impl Frame {
    fn new(table: &'static TableDef, height: usize) -> Self {
        Self {
            table,
            height,
            columns: vec![Column::new(
                col::SCHEMA_VERSION.into(),
                vec![SCHEMA_VERSION; height],
            )],
        }
    }

    fn add<T, P: ?Sized>(&mut self, name: &str, values: T)
    where
        Series: NamedFrom<T, P>,
    {
        self.columns.push(Column::new(name.into(), values));
    }

    fn add_list<T: PolarsNumericType>(&mut self, name: &str, lists: &[&[T::Native]]) {
        let values: usize = lists.iter().map(|l| l.len()).sum();
        let mut b = ListPrimitiveChunkedBuilder::<T>::new(
            name.into(),
            lists.len(),
            values,
            T::get_static_dtype(),
        );
        for l in lists {
            b.append_slice(l);
        }
        self.columns.push(b.finish().into_series().into_column());
    }

    fn finish(self) -> Result<DataFrame, SchemaError> {
        let table = self.table;
        let mut axes = Vec::new();
        let mut named: HashMap<String, Column> = HashMap::new();
        for c in self.columns {
            if c.name().starts_with(AXIS_PREFIX) {
                axes.push(c);
            } else {
                named.insert(c.name().to_string(), c);
            }
        }
        let mut ordered = Vec::with_capacity(table.columns.len() + axes.len());
        for def in table.columns {
            let c = named
                .remove(def.name)
                .ok_or_else(|| SchemaError::column(table.name, def.name, "was not built"))?;
            ordered.push(c);
            if table.axes_after == Some(def.name) {
                ordered.append(&mut axes);
            }
        }
        let mut extra = named.keys().map(String::as_str);
        let mut extra_axes = axes.iter().map(|c| c.name().as_str());
        if let Some(name) = extra.next().or_else(|| extra_axes.next()) {
            return Err(SchemaError::column(
                table.name,
                name,
                "is not in the schema (docs/results.md)",
            ));
        }
        let df = DataFrame::new(self.height, ordered).map_err(SchemaError::polars(table.name))?;
        check_columns(table, df.schema(), ExtraColumns::Refuse)?;
        check_nulls(table, &df)?;
        Ok(df)
    }
}

/// One `(trial_id, record)` per row, trials in the order given.
fn flatten<'a, T>(trials: &[TrialRows<'a, T>]) -> Vec<(&'a str, &'a T)> {
    trials
        .iter()
        .flat_map(|(id, rows)| rows.iter().map(move |r| (*id, r)))
        .collect()
}

/// One field of every row.
fn field<'a, T, U>(rows: &[(&str, &'a T)], f: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(|(_, r)| f(r)).collect()
}

fn trial_ids<'a, T>(rows: &[(&'a str, &T)]) -> Vec<&'a str> {
    rows.iter().map(|(id, _)| *id).collect()
}

/// The Parquet type of a swept key, from its values: one kind keeps its type, integers and
/// floats together are floats, any other mix is text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AxisType {
    Int,
    Float,
    Bool,
    Str,
}

fn axis_type<'a>(values: impl Iterator<Item = &'a AxisValue>) -> AxisType {
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

fn axis_column(name: &str, values: &[Option<&AxisValue>]) -> Column {
    let name = PlSmallStr::from(name);
    match axis_type(values.iter().flatten().copied()) {
        AxisType::Int => Column::new(
            name,
            field_opt(values, |v| match v {
                AxisValue::Int(i) => Some(*i),
                _ => None,
            }),
        ),
        AxisType::Float => Column::new(name, field_opt(values, AxisValue::as_f64)),
        AxisType::Bool => Column::new(
            name,
            field_opt(values, |v| match v {
                AxisValue::Bool(b) => Some(*b),
                _ => None,
            }),
        ),
        AxisType::Str => Column::new(name, field_opt(values, |v| Some(v.to_string()))),
    }
}

fn field_opt<U>(
    values: &[Option<&AxisValue>],
    f: impl Fn(&AxisValue) -> Option<U>,
) -> Vec<Option<U>> {
    values.iter().map(|v| v.and_then(&f)).collect()
}

/// `trials.parquet`: one row per trial; one `axis.<key>` column per key swept by any trial.
pub fn trials_frame(rows: &[TrialRow]) -> Result<DataFrame, SchemaError> {
    let mut f = Frame::new(&TRIALS, rows.len());
    let s = |g: fn(&TrialRow) -> &str| rows.iter().map(g).collect::<Vec<&str>>();
    let o = |g: fn(&TrialRow) -> Option<&str>| rows.iter().map(g).collect::<Vec<_>>();
    f.add(col::EXPERIMENT, s(|r| &r.experiment));
    f.add(col::TRIAL_ID, s(|r| &r.trial_id));
    f.add(col::VARIANT_ID, s(|r| &r.variant_id));
    f.add(col::VARIANT, s(|r| &r.variant));
    f.add(col::SEED, rows.iter().map(|r| r.seed).collect::<Vec<u64>>());
    f.add(col::ATTENTION, s(|r| &r.attention));
    let keys: BTreeSet<&String> = rows.iter().flat_map(|r| r.axes.keys()).collect();
    for key in keys {
        let values: Vec<Option<&AxisValue>> = rows.iter().map(|r| r.axes.get(key)).collect();
        f.columns
            .push(axis_column(&format!("{AXIS_PREFIX}{key}"), &values));
    }
    f.add(col::STATUS, s(|r| r.status.as_str()));
    f.add(
        col::ATTEMPTS,
        rows.iter().map(|r| r.attempts).collect::<Vec<u32>>(),
    );
    f.add(
        col::PARAMS,
        rows.iter().map(|r| r.params).collect::<Vec<_>>(),
    );
    f.add(col::MACS, rows.iter().map(|r| r.macs).collect::<Vec<_>>());
    f.add(
        col::EPOCHS_PLANNED,
        rows.iter().map(|r| r.epochs_planned).collect::<Vec<u32>>(),
    );
    f.add(
        col::EPOCHS_DONE,
        rows.iter().map(|r| r.epochs_done).collect::<Vec<u32>>(),
    );
    let num = |g: fn(&TrialRow) -> Option<f64>| rows.iter().map(g).collect::<Vec<_>>();
    f.add(col::FINAL_TEST_ACC, num(|r| r.final_test_acc));
    f.add(col::BEST_TEST_ACC, num(|r| r.best_test_acc));
    f.add(col::FINAL_TEST_LOSS, num(|r| r.final_test_loss));
    f.add(
        col::TRAIN_SECONDS,
        rows.iter().map(|r| r.train_seconds).collect::<Vec<f64>>(),
    );
    f.add(col::IMAGES_PER_SEC, num(|r| r.images_per_sec));
    f.add(col::DEVICE, o(|r| r.device.as_deref()));
    f.add(col::DEVICE_NAME, o(|r| r.device_name.as_deref()));
    f.add(col::STARTED_AT, o(|r| r.started_at.as_deref()));
    f.add(col::ENDED_AT, o(|r| r.ended_at.as_deref()));
    f.add(
        col::EXIT_CODE,
        rows.iter()
            .map(|r| r.exit_code)
            .collect::<Vec<Option<i32>>>(),
    );
    f.add(col::ERROR, o(|r| r.error.as_deref()));
    f.add(col::CONFIG, s(|r| &r.config));
    f.finish()
}

/// `epochs.parquet`: one row per trial and epoch.
pub fn epochs_frame(trials: &[TrialRows<'_, EpochLine>]) -> Result<DataFrame, SchemaError> {
    let rows = flatten(trials);
    let mut f = Frame::new(&EPOCHS, rows.len());
    f.add(col::TRIAL_ID, trial_ids(&rows));
    f.add(col::EPOCH, field(&rows, |e| e.epoch));
    f.add(col::TRAIN_LOSS, field(&rows, |e| e.train_loss));
    f.add(col::TRAIN_ACC, field(&rows, |e| e.train_acc));
    f.add(col::TEST_LOSS, field(&rows, |e| e.test_loss));
    f.add(col::TEST_ACC, field(&rows, |e| e.test_acc));
    f.add(col::LR, field(&rows, |e| e.lr));
    f.add(col::SECONDS, field(&rows, |e| e.seconds));
    f.add(col::IMAGES_PER_SEC, field(&rows, |e| e.images_per_sec));
    f.finish()
}

/// `iterations.parquet`: one row per training step.
pub fn iterations_frame(trials: &[TrialRows<'_, IterationLine>]) -> Result<DataFrame, SchemaError> {
    let rows = flatten(trials);
    let mut f = Frame::new(&ITERATIONS, rows.len());
    f.add(col::TRIAL_ID, trial_ids(&rows));
    f.add(col::EPOCH, field(&rows, |i| i.epoch));
    f.add(col::STEP, field(&rows, |i| i.step));
    f.add(col::ITERATION, field(&rows, |i| i.iteration));
    f.add(col::LOSS, field(&rows, |i| i.loss));
    f.finish()
}

/// `classes.parquet`: one row per trial and true class.
pub fn classes_frame(trials: &[TrialRows<'_, ClassLine>]) -> Result<DataFrame, SchemaError> {
    let rows = flatten(trials);
    let mut f = Frame::new(&CLASSES, rows.len());
    f.add(col::TRIAL_ID, trial_ids(&rows));
    f.add(col::CLASS_INDEX, field(&rows, |c| c.class_index));
    f.add(col::CLASS, field(&rows, |c| c.class.as_str()));
    f.add(col::ACCURACY, field(&rows, ClassLine::accuracy));
    f.add(col::CORRECT, field(&rows, |c| c.correct));
    f.add(col::TOTAL, field(&rows, |c| c.total));
    f.add_list::<UInt64Type>(col::CONFUSION, &field(&rows, |c| c.confusion.as_slice()));
    f.finish()
}

/// `gates.parquet`: one row per trial, block, class and channel.
pub fn gates_frame(trials: &[TrialRows<'_, GateBlock>]) -> Result<DataFrame, SchemaError> {
    let (mut trial, mut block, mut class_index, mut channel, mut mean_gate) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (id, g) in flatten(trials) {
        for (c, per_channel) in g.mean_gate.iter().enumerate() {
            for (ch, v) in per_channel.iter().enumerate() {
                trial.push(id);
                block.push(g.block);
                class_index.push(c as u32);
                channel.push(ch as u32);
                mean_gate.push(*v);
            }
        }
    }
    let mut f = Frame::new(&GATES, trial.len());
    f.add(col::TRIAL_ID, trial);
    f.add(col::BLOCK, block);
    f.add(col::CLASS_INDEX, class_index);
    f.add(col::CHANNEL, channel);
    f.add(col::MEAN_GATE, mean_gate);
    f.finish()
}

/// `samples.parquet`: one row per trial and sample image.
pub fn samples_frame(trials: &[TrialRows<'_, SampleImage>]) -> Result<DataFrame, SchemaError> {
    let rows = flatten(trials);
    let mut f = Frame::new(&SAMPLES, rows.len());
    f.add(col::TRIAL_ID, trial_ids(&rows));
    f.add(col::SAMPLE, field(&rows, |s| s.sample));
    f.add(col::CLASS_INDEX, field(&rows, |s| s.class_index));
    f.add(col::CLASS, field(&rows, |s| s.class.as_str()));
    f.add(col::PREDICTED, field(&rows, |s| s.predicted));
    f.add(col::HEIGHT, field(&rows, |s| s.height));
    f.add(col::WIDTH, field(&rows, |s| s.width));
    f.add_list::<UInt8Type>(col::PIXELS, &field(&rows, |s| s.pixels.as_slice()));
    f.finish()
}

/// `feature_maps.parquet`: one row per trial, sample, block and channel.
pub fn feature_maps_frame(trials: &[TrialRows<'_, FeatureMap>]) -> Result<DataFrame, SchemaError> {
    let rows = flatten(trials);
    let mut f = Frame::new(&FEATURE_MAPS, rows.len());
    f.add(col::TRIAL_ID, trial_ids(&rows));
    f.add(col::SAMPLE, field(&rows, |m| m.sample));
    f.add(col::BLOCK, field(&rows, |m| m.block));
    f.add(col::CHANNEL, field(&rows, |m| m.channel));
    f.add(col::HEIGHT, field(&rows, |m| m.height));
    f.add(col::WIDTH, field(&rows, |m| m.width));
    f.add_list::<Float32Type>(col::VALUES, &field(&rows, |m| m.values.as_slice()));
    f.finish()
}

/// Writes `df` as `dir/<table>.parquet` (zstd, polars' default) through a temporary file in
/// `dir`, fsynced, then renamed over the old file. Returns the file's path.
pub fn write_table(
    dir: &Path,
    table: &'static TableDef,
    df: &mut DataFrame,
) -> Result<PathBuf, SchemaError> {
    stage_table(dir, table, df)?.commit()
}

/// A table written whole to a synced temporary file beside its destination and not yet renamed
/// over it, so that several tables can be replaced as a set: stage them all, then commit each
/// ([`stage_table`]). Dropped uncommitted, the temporary file is removed and the old file stays.
pub struct StagedTable {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl StagedTable {
    /// The file it replaces when committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary file over the table's file. Returns the file's path.
    pub fn commit(self) -> Result<PathBuf, SchemaError> {
        let path = self.path;
        self.tmp.persist(&path).map_err(|e| SchemaError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(path)
    }
}

/// Writes `df` as `dir/<table>.parquet` (zstd, polars' default) to a temporary file in `dir`,
/// fsynced, without replacing the old file yet ([`StagedTable::commit`]).
pub fn stage_table(
    dir: &Path,
    table: &'static TableDef,
    df: &mut DataFrame,
) -> Result<StagedTable, SchemaError> {
    let path = dir.join(table.file_name());
    let io = |source| SchemaError::Io {
        path: path.clone(),
        source,
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".parquet")
        .tempfile_in(dir)
        .map_err(io)?;
    ParquetWriter::new(tmp.as_file())
        .finish(df)
        .map_err(SchemaError::polars(table.name))?;
    tmp.as_file().sync_all().map_err(io)?;
    Ok(StagedTable { tmp, path })
}
