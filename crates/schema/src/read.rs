//! Reading tables back: a lazy scan that checks the columns and the schema version first, typed
//! access to a collected frame's columns, and the rows of the tables a reader takes whole.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::check::{check_columns, check_nulls, is_axis_dtype, ExtraColumns};
use crate::error::SchemaError;
use crate::rows::{AxisValue, ClassLine, FeatureMap, SampleImage, TrialRow, TrialState};
use crate::tables::{col, TableDef, AXIS_PREFIX, CLASSES, FEATURE_MAPS, SAMPLES, TRIALS};
use crate::SCHEMA_VERSION;

/// Scans `dir/<table>.parquet` lazily. `Ok(None)` when the file does not exist; an error when
/// a documented column is missing or has another type, or when a row carries another schema
/// version (a cheap min/max query on one column). Undocumented columns are ignored.
pub fn scan_table(dir: &Path, table: &'static TableDef) -> Result<Option<LazyFrame>, SchemaError> {
    let path = dir.join(table.file_name());
    if !path.is_file() {
        return Ok(None);
    }
    let pl_path = PlRefPath::try_from_path(&path).map_err(SchemaError::polars(table.name))?;
    let lf = LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default())
        .map_err(SchemaError::polars(table.name))?;
    let schema = lf
        .clone()
        .collect_schema()
        .map_err(SchemaError::polars(table.name))?;
    check_columns(table, &schema, ExtraColumns::Ignore)?;
    let v = col(col::SCHEMA_VERSION);
    let versions = lf
        .clone()
        .select([v.clone().min().alias("lo"), v.max().alias("hi")])
        .collect()
        .map_err(SchemaError::polars(table.name))?;
    let read = ColumnReader::new(table, &versions);
    for found in read.values::<UInt32Type>("lo")? {
        check_version(table, found)?;
    }
    for found in read.values::<UInt32Type>("hi")? {
        check_version(table, found)?;
    }
    Ok(Some(lf))
}

fn check_version(table: &'static TableDef, found: Option<u32>) -> Result<(), SchemaError> {
    match found {
        Some(found) if found != SCHEMA_VERSION => Err(SchemaError::Version {
            table: table.name,
            found,
            expected: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

/// One swept key's column: the key (without `axis.`) and a value per row.
type AxisColumn = (String, Vec<Option<AxisValue>>);

/// Typed access to the columns of a frame collected from `table` (rows or aggregates), with
/// errors naming the table and the column. Types are taken as they are, not cast: a scan
/// checked them against the schema.
pub struct ColumnReader<'a> {
    table: &'static TableDef,
    df: &'a DataFrame,
}

impl<'a> ColumnReader<'a> {
    /// Reads `df`, collected from `table`.
    pub fn new(table: &'static TableDef, df: &'a DataFrame) -> Self {
        Self { table, df }
    }

    fn column(&self, name: &str) -> Result<&'a Column, SchemaError> {
        self.df
            .column(name)
            .map_err(|_| SchemaError::column(self.table.name, name, "is missing"))
    }

    fn wrong_type(&self, name: &str, e: PolarsError) -> SchemaError {
        SchemaError::column(self.table.name, name, format!("has the wrong type: {e}"))
    }

    /// A text column.
    pub fn strings(&self, name: &str) -> Result<Vec<Option<String>>, SchemaError> {
        let c = self.column(name)?;
        let ca = c.str().map_err(|e| self.wrong_type(name, e))?;
        Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
    }

    /// A numeric column of type `T`.
    pub fn values<T>(&self, name: &str) -> Result<Vec<Option<T::Native>>, SchemaError>
    where
        T: PolarsNumericType,
    {
        let c = self.column(name)?;
        let ca = c
            .as_materialized_series()
            .unpack::<T>()
            .map_err(|e| self.wrong_type(name, e))?;
        Ok(ca.iter().collect())
    }

    /// A numeric column of any type, as f64 (aggregates: means, sums).
    pub fn floats(&self, name: &str) -> Result<Vec<Option<f64>>, SchemaError> {
        let c = self
            .column(name)?
            .cast(&DataType::Float64)
            .map_err(|e| self.wrong_type(name, e))?;
        let ca = c.f64().map_err(|e| self.wrong_type(name, e))?;
        Ok(ca.iter().collect())
    }

    /// A list column of numbers of type `T`, one `Vec` per row (`None` for a null row; a null
    /// inside a list reads as `null`).
    pub fn lists<T>(
        &self,
        name: &str,
        null: T::Native,
    ) -> Result<Vec<Option<Vec<T::Native>>>, SchemaError>
    where
        T: PolarsNumericType,
    {
        let c = self.column(name)?;
        let ca = c.list().map_err(|e| self.wrong_type(name, e))?;
        let mut out = Vec::with_capacity(ca.len());
        for row in ca.amortized_iter() {
            out.push(match row {
                Some(s) => Some(
                    s.as_ref()
                        .unpack::<T>()
                        .map_err(|e| self.wrong_type(name, e))?
                        .iter()
                        .map(|v| v.unwrap_or(null))
                        .collect(),
                ),
                None => None,
            });
        }
        Ok(out)
    }

    /// `values` without nulls, or an error naming the column.
    pub fn required<T>(&self, name: &str, values: Vec<Option<T>>) -> Result<Vec<T>, SchemaError> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    SchemaError::column(
                        self.table.name,
                        name,
                        format!("has a null value (row {i})"),
                    )
                })
            })
            .collect()
    }

    /// A text column without nulls.
    pub fn required_strings(&self, name: &str) -> Result<Vec<String>, SchemaError> {
        self.required(name, self.strings(name)?)
    }

    /// A numeric column of type `T` without nulls.
    pub fn required_values<T>(&self, name: &str) -> Result<Vec<T::Native>, SchemaError>
    where
        T: PolarsNumericType,
    {
        self.required(name, self.values::<T>(name)?)
    }

    /// The `status` column as trial states.
    fn states(&self) -> Result<Vec<TrialState>, SchemaError> {
        self.required_strings(col::STATUS)?
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| SchemaError::column(self.table.name, col::STATUS, e))
            })
            .collect()
    }

    /// Every swept-key column (`axis.<key>` of a swept-key type): `(key, values)`.
    fn axes(&self) -> Result<Vec<AxisColumn>, SchemaError> {
        let mut axes = Vec::new();
        for c in self.df.columns() {
            if let Some(key) = c.name().strip_prefix(AXIS_PREFIX) {
                if is_axis_dtype(c.dtype()) {
                    axes.push((key.to_string(), self.axis(c.name())?));
                }
            }
        }
        Ok(axes)
    }

    /// A swept-key column, typed by its Parquet type.
    fn axis(&self, name: &str) -> Result<Vec<Option<AxisValue>>, SchemaError> {
        let c = self.column(name)?;
        Ok(match c.dtype() {
            DataType::Boolean => c
                .bool()
                .map_err(|e| self.wrong_type(name, e))?
                .iter()
                .map(|v| v.map(AxisValue::Bool))
                .collect(),
            DataType::Float64 => self
                .values::<Float64Type>(name)?
                .into_iter()
                .map(|v| v.map(AxisValue::Float))
                .collect(),
            DataType::Int64 => self
                .values::<Int64Type>(name)?
                .into_iter()
                .map(|v| v.map(AxisValue::Int))
                .collect(),
            _ => self
                .strings(name)?
                .into_iter()
                .map(|v| v.map(AxisValue::Str))
                .collect(),
        })
    }
}

/// The rows of a frame collected from `trials.parquet`.
pub fn trials_from_frame(df: &DataFrame) -> Result<Vec<TrialRow>, SchemaError> {
    check_nulls(&TRIALS, df)?;
    let r = ColumnReader::new(&TRIALS, df);
    let strings = |name| r.required_strings(name);
    let (experiment, trial_id, variant_id, variant, attention, config) = (
        strings(col::EXPERIMENT)?,
        strings(col::TRIAL_ID)?,
        strings(col::VARIANT_ID)?,
        strings(col::VARIANT)?,
        strings(col::ATTENTION)?,
        strings(col::CONFIG)?,
    );
    let status = r.states()?;
    let seed = r.required_values::<UInt64Type>(col::SEED)?;
    let attempts = r.required_values::<UInt32Type>(col::ATTEMPTS)?;
    let params = r.values::<UInt64Type>(col::PARAMS)?;
    let macs = r.values::<UInt64Type>(col::MACS)?;
    let epochs_planned = r.required_values::<UInt32Type>(col::EPOCHS_PLANNED)?;
    let epochs_done = r.required_values::<UInt32Type>(col::EPOCHS_DONE)?;
    let f64s = |name| r.values::<Float64Type>(name);
    let (final_test_acc, best_test_acc, final_test_loss, images_per_sec) = (
        f64s(col::FINAL_TEST_ACC)?,
        f64s(col::BEST_TEST_ACC)?,
        f64s(col::FINAL_TEST_LOSS)?,
        f64s(col::IMAGES_PER_SEC)?,
    );
    let train_seconds = r.required_values::<Float64Type>(col::TRAIN_SECONDS)?;
    let (device, device_name, started_at, ended_at, error) = (
        r.strings(col::DEVICE)?,
        r.strings(col::DEVICE_NAME)?,
        r.strings(col::STARTED_AT)?,
        r.strings(col::ENDED_AT)?,
        r.strings(col::ERROR)?,
    );
    let exit_code = r.values::<Int32Type>(col::EXIT_CODE)?;
    let axes = r.axes()?;
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let axes: BTreeMap<String, AxisValue> = axes
            .iter()
            .filter_map(|(k, vals)| Some((k.clone(), vals[i].clone()?)))
            .collect();
        rows.push(TrialRow {
            experiment: experiment[i].clone(),
            trial_id: trial_id[i].clone(),
            variant_id: variant_id[i].clone(),
            variant: variant[i].clone(),
            seed: seed[i],
            attention: attention[i].clone(),
            axes,
            status: status[i],
            attempts: attempts[i],
            params: params[i],
            macs: macs[i],
            epochs_planned: epochs_planned[i],
            epochs_done: epochs_done[i],
            final_test_acc: final_test_acc[i],
            best_test_acc: best_test_acc[i],
            final_test_loss: final_test_loss[i],
            train_seconds: train_seconds[i],
            images_per_sec: images_per_sec[i],
            device: device[i].clone(),
            device_name: device_name[i].clone(),
            started_at: started_at[i].clone(),
            ended_at: ended_at[i].clone(),
            exit_code: exit_code[i],
            error: error[i].clone(),
            config: config[i].clone(),
        });
    }
    Ok(rows)
}

/// The rows of a frame collected from `classes.parquet`: `(trial_id, class)`.
pub fn classes_from_frame(df: &DataFrame) -> Result<Vec<(String, ClassLine)>, SchemaError> {
    let r = ColumnReader::new(&CLASSES, df);
    let trial_id = r.required_strings(col::TRIAL_ID)?;
    let class_index = r.required_values::<UInt32Type>(col::CLASS_INDEX)?;
    let class = r.required_strings(col::CLASS)?;
    let correct = r.required_values::<UInt64Type>(col::CORRECT)?;
    let total = r.required_values::<UInt64Type>(col::TOTAL)?;
    let confusion = r.required(col::CONFUSION, r.lists::<UInt64Type>(col::CONFUSION, 0)?)?;
    Ok(trial_id
        .into_iter()
        .zip(class_index)
        .zip(class)
        .zip(correct.into_iter().zip(total))
        .zip(confusion)
        .map(
            |((((id, class_index), class), (correct, total)), confusion)| {
                (
                    id,
                    ClassLine {
                        class_index,
                        class,
                        correct,
                        total,
                        confusion,
                    },
                )
            },
        )
        .collect())
}

/// The rows of a frame collected from `samples.parquet`: `(trial_id, image)`; an image whose
/// pixels are not `3 x height x width` is an error.
pub fn samples_from_frame(df: &DataFrame) -> Result<Vec<(String, SampleImage)>, SchemaError> {
    let r = ColumnReader::new(&SAMPLES, df);
    let trial_id = r.required_strings(col::TRIAL_ID)?;
    let u32s = |name| r.required_values::<UInt32Type>(name);
    let (sample, class_index, predicted, height, width) = (
        u32s(col::SAMPLE)?,
        u32s(col::CLASS_INDEX)?,
        u32s(col::PREDICTED)?,
        u32s(col::HEIGHT)?,
        u32s(col::WIDTH)?,
    );
    let class = r.required_strings(col::CLASS)?;
    let pixels = r.required(col::PIXELS, r.lists::<UInt8Type>(col::PIXELS, 0)?)?;
    let mut out = Vec::with_capacity(df.height());
    for (i, (id, pixels)) in trial_id.into_iter().zip(pixels).enumerate() {
        let (h, w) = (height[i], width[i]);
        if pixels.len() != 3 * h as usize * w as usize {
            return Err(SchemaError::column(
                "samples",
                col::PIXELS,
                format!(
                    "has {} values for a 3x{h}x{w} image (trial {id}, sample {})",
                    pixels.len(),
                    sample[i]
                ),
            ));
        }
        let image = SampleImage {
            sample: sample[i],
            class_index: class_index[i],
            class: class[i].clone(),
            predicted: predicted[i],
            height: h,
            width: w,
            pixels,
        };
        out.push((id, image));
    }
    Ok(out)
}

/// The rows of a frame collected from `feature_maps.parquet`: `(trial_id, map)`; a map whose
/// values are not `height x width` is an error.
pub fn feature_maps_from_frame(df: &DataFrame) -> Result<Vec<(String, FeatureMap)>, SchemaError> {
    let r = ColumnReader::new(&FEATURE_MAPS, df);
    let trial_id = r.required_strings(col::TRIAL_ID)?;
    let u32s = |name| r.required_values::<UInt32Type>(name);
    let (sample, block, channel, height, width) = (
        u32s(col::SAMPLE)?,
        u32s(col::BLOCK)?,
        u32s(col::CHANNEL)?,
        u32s(col::HEIGHT)?,
        u32s(col::WIDTH)?,
    );
    let values = r.required(col::VALUES, r.lists::<Float32Type>(col::VALUES, f32::NAN)?)?;
    let mut out = Vec::with_capacity(df.height());
    for (i, (id, values)) in trial_id.into_iter().zip(values).enumerate() {
        let map = FeatureMap {
            sample: sample[i],
            block: block[i],
            channel: channel[i],
            height: height[i],
            width: width[i],
            values,
        };
        if map.values.len() != map.height as usize * map.width as usize {
            return Err(SchemaError::column(
                "feature_maps",
                col::VALUES,
                format!(
                    "has {} values for a {}x{} map (trial {id}, sample {}, block {}, channel {})",
                    map.values.len(),
                    map.height,
                    map.width,
                    map.sample,
                    map.block,
                    map.channel
                ),
            ));
        }
        out.push((id, map));
    }
    Ok(out)
}
