//! The seven Parquet tables of a sweep (docs/results.md): their file names, columns, types and
//! which columns may hold nulls. Every writer and reader of the tables names its columns with
//! the constants of [`col`] and checks a frame against these definitions.

use polars::prelude::DataType;

/// Column names, shared by the tables that have them.
pub mod col {
    /// Schema version of the row (every table).
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// Experiment name.
    pub const EXPERIMENT: &str = "experiment";
    /// Stable id of (resolved configuration, seed) (every table).
    pub const TRIAL_ID: &str = "trial_id";
    /// Stable id of the resolved configuration without the seed.
    pub const VARIANT_ID: &str = "variant_id";
    /// Human label of the variant.
    pub const VARIANT: &str = "variant";
    /// The trial's seed.
    pub const SEED: &str = "seed";
    /// `model.attention` of the trial.
    pub const ATTENTION: &str = "attention";
    /// The trial's state ([`crate::TrialState`]).
    pub const STATUS: &str = "status";
    /// How many times the trial was started.
    pub const ATTEMPTS: &str = "attempts";
    /// Trainable parameters.
    pub const PARAMS: &str = "params";
    /// Multiply-accumulates per image.
    pub const MACS: &str = "macs";
    /// Planned epochs.
    pub const EPOCHS_PLANNED: &str = "epochs_planned";
    /// Epochs done.
    pub const EPOCHS_DONE: &str = "epochs_done";
    /// Test accuracy after the last epoch done.
    pub const FINAL_TEST_ACC: &str = "final_test_acc";
    /// Best test accuracy over epochs.
    pub const BEST_TEST_ACC: &str = "best_test_acc";
    /// Test loss after the last epoch done.
    pub const FINAL_TEST_LOSS: &str = "final_test_loss";
    /// Training wall time of the epochs done.
    pub const TRAIN_SECONDS: &str = "train_seconds";
    /// Training throughput (trials: mean over the epochs; epochs: of the epoch).
    pub const IMAGES_PER_SEC: &str = "images_per_sec";
    /// Device of the last attempt (`cpu`, `cuda:0`, ...).
    pub const DEVICE: &str = "device";
    /// Human name of that device (`NVIDIA H200`, the CPU model).
    pub const DEVICE_NAME: &str = "device_name";
    /// When the first attempt started.
    pub const STARTED_AT: &str = "started_at";
    /// When the last attempt ended.
    pub const ENDED_AT: &str = "ended_at";
    /// Exit code of the last child process.
    pub const EXIT_CODE: &str = "exit_code";
    /// Error text of failed and diverged trials.
    pub const ERROR: &str = "error";
    /// The resolved configuration as TOML.
    pub const CONFIG: &str = "config";
    /// 1-based epoch.
    pub const EPOCH: &str = "epoch";
    /// Mean training loss of the epoch.
    pub const TRAIN_LOSS: &str = "train_loss";
    /// Training accuracy of the epoch.
    pub const TRAIN_ACC: &str = "train_acc";
    /// Test loss after the epoch.
    pub const TEST_LOSS: &str = "test_loss";
    /// Test accuracy after the epoch.
    pub const TEST_ACC: &str = "test_acc";
    /// Learning rate used during the epoch.
    pub const LR: &str = "lr";
    /// Training time of the epoch.
    pub const SECONDS: &str = "seconds";
    /// 0-based step within the epoch.
    pub const STEP: &str = "step";
    /// 0-based step over the whole trial.
    pub const ITERATION: &str = "iteration";
    /// Training loss of one step.
    pub const LOSS: &str = "loss";
    /// Class index.
    pub const CLASS_INDEX: &str = "class_index";
    /// Class name.
    pub const CLASS: &str = "class";
    /// Accuracy on the test images of a class.
    pub const ACCURACY: &str = "accuracy";
    /// Correctly classified test images of a class.
    pub const CORRECT: &str = "correct";
    /// Test images of a class.
    pub const TOTAL: &str = "total";
    /// Row of the confusion matrix.
    pub const CONFUSION: &str = "confusion";
    /// Block (1..3).
    pub const BLOCK: &str = "block";
    /// Channel.
    pub const CHANNEL: &str = "channel";
    /// Mean gate of a channel over a class's test images.
    pub const MEAN_GATE: &str = "mean_gate";
    /// 0-based sample image.
    pub const SAMPLE: &str = "sample";
    /// Predicted class index.
    pub const PREDICTED: &str = "predicted";
    /// Image or map height.
    pub const HEIGHT: &str = "height";
    /// Image or map width.
    pub const WIDTH: &str = "width";
    /// Un-normalized pixels, `[3, H, W]`.
    pub const PIXELS: &str = "pixels";
    /// Feature-map values, row-major.
    pub const VALUES: &str = "values";
}

/// Prefix of the swept-key columns of `trials.parquet` (`axis.model.reduction`).
pub const AXIS_PREFIX: &str = "axis.";

/// The Parquet type of a documented column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `UInt32`.
    UInt32,
    /// `UInt64`.
    UInt64,
    /// `Int32`.
    Int32,
    /// `Float32`.
    Float32,
    /// `Float64`.
    Float64,
    /// `String`.
    String,
    /// `List(UInt8)`.
    ListUInt8,
    /// `List(UInt64)`.
    ListUInt64,
    /// `List(Float32)`.
    ListFloat32,
}

impl ColumnType {
    /// The polars type.
    pub fn dtype(self) -> DataType {
        let list = |inner| DataType::List(Box::new(inner));
        match self {
            Self::UInt32 => DataType::UInt32,
            Self::UInt64 => DataType::UInt64,
            Self::Int32 => DataType::Int32,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::String => DataType::String,
            Self::ListUInt8 => list(DataType::UInt8),
            Self::ListUInt64 => list(DataType::UInt64),
            Self::ListFloat32 => list(DataType::Float32),
        }
    }

    /// The name docs/results.md uses (`UInt32`, `List(UInt8)`).
    pub fn doc_name(self) -> &'static str {
        match self {
            Self::UInt32 => "UInt32",
            Self::UInt64 => "UInt64",
            Self::Int32 => "Int32",
            Self::Float32 => "Float32",
            Self::Float64 => "Float64",
            Self::String => "String",
            Self::ListUInt8 => "List(UInt8)",
            Self::ListUInt64 => "List(UInt64)",
            Self::ListFloat32 => "List(Float32)",
        }
    }
}

/// One documented column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    /// Its name (a constant of [`col`]).
    pub name: &'static str,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

const fn req(name: &'static str, ty: ColumnType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        nullable: false,
    }
}

const fn opt(name: &'static str, ty: ColumnType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        nullable: true,
    }
}

/// One Parquet table of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The file stem (`trials` for `trials.parquet`).
    pub name: &'static str,
    /// The documented columns, in file order.
    pub columns: &'static [ColumnDef],
    /// Where the swept-key columns (`axis.<key>`, one per swept key, typed by their values) go:
    /// right after this column. `None`: the table has none.
    pub axes_after: Option<&'static str>,
}

impl TableDef {
    /// `<name>.parquet`.
    pub fn file_name(&self) -> String {
        format!("{}.parquet", self.name)
    }

    /// The documented column `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&'static ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

use ColumnType as T;

/// `trials.parquet`: one row per trial ([`crate::TrialRow`]).
pub const TRIALS: TableDef = TableDef {
    name: "trials",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::EXPERIMENT, T::String),
        req(col::TRIAL_ID, T::String),
        req(col::VARIANT_ID, T::String),
        req(col::VARIANT, T::String),
        req(col::SEED, T::UInt64),
        req(col::ATTENTION, T::String),
        req(col::STATUS, T::String),
        req(col::ATTEMPTS, T::UInt32),
        opt(col::PARAMS, T::UInt64),
        opt(col::MACS, T::UInt64),
        req(col::EPOCHS_PLANNED, T::UInt32),
        req(col::EPOCHS_DONE, T::UInt32),
        opt(col::FINAL_TEST_ACC, T::Float64),
        opt(col::BEST_TEST_ACC, T::Float64),
        opt(col::FINAL_TEST_LOSS, T::Float64),
        req(col::TRAIN_SECONDS, T::Float64),
        opt(col::IMAGES_PER_SEC, T::Float64),
        opt(col::DEVICE, T::String),
        opt(col::DEVICE_NAME, T::String),
        opt(col::STARTED_AT, T::String),
        opt(col::ENDED_AT, T::String),
        opt(col::EXIT_CODE, T::Int32),
        opt(col::ERROR, T::String),
        req(col::CONFIG, T::String),
    ],
    axes_after: Some(col::ATTENTION),
};

/// `epochs.parquet`: one row per trial and epoch ([`crate::EpochLine`]).
pub const EPOCHS: TableDef = TableDef {
    name: "epochs",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::EPOCH, T::UInt32),
        req(col::TRAIN_LOSS, T::Float64),
        req(col::TRAIN_ACC, T::Float64),
        req(col::TEST_LOSS, T::Float64),
        req(col::TEST_ACC, T::Float64),
        req(col::LR, T::Float64),
        req(col::SECONDS, T::Float64),
        req(col::IMAGES_PER_SEC, T::Float64),
    ],
    axes_after: None,
};

/// `iterations.parquet`: one row per training step ([`crate::IterationLine`]).
pub const ITERATIONS: TableDef = TableDef {
    name: "iterations",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::EPOCH, T::UInt32),
        req(col::STEP, T::UInt32),
        req(col::ITERATION, T::UInt64),
        req(col::LOSS, T::Float32),
    ],
    axes_after: None,
};

/// `classes.parquet`: one row per trial and true class ([`crate::ClassLine`]).
pub const CLASSES: TableDef = TableDef {
    name: "classes",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::CLASS_INDEX, T::UInt32),
        req(col::CLASS, T::String),
        req(col::ACCURACY, T::Float64),
        req(col::CORRECT, T::UInt64),
        req(col::TOTAL, T::UInt64),
        req(col::CONFUSION, T::ListUInt64),
    ],
    axes_after: None,
};

/// `gates.parquet`: mean gate per trial, block, class and channel ([`crate::GateBlock`]).
pub const GATES: TableDef = TableDef {
    name: "gates",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::BLOCK, T::UInt32),
        req(col::CLASS_INDEX, T::UInt32),
        req(col::CHANNEL, T::UInt32),
        req(col::MEAN_GATE, T::Float32),
    ],
    axes_after: None,
};

/// `samples.parquet`: the fixed test images of each trial ([`crate::SampleImage`]).
pub const SAMPLES: TableDef = TableDef {
    name: "samples",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::SAMPLE, T::UInt32),
        req(col::CLASS_INDEX, T::UInt32),
        req(col::CLASS, T::String),
        req(col::PREDICTED, T::UInt32),
        req(col::HEIGHT, T::UInt32),
        req(col::WIDTH, T::UInt32),
        req(col::PIXELS, T::ListUInt8),
    ],
    axes_after: None,
};

/// `feature_maps.parquet`: first channels of each block's conv output on the sample images
/// ([`crate::FeatureMap`]).
pub const FEATURE_MAPS: TableDef = TableDef {
    name: "feature_maps",
    columns: &[
        req(col::SCHEMA_VERSION, T::UInt32),
        req(col::TRIAL_ID, T::String),
        req(col::SAMPLE, T::UInt32),
        req(col::BLOCK, T::UInt32),
        req(col::CHANNEL, T::UInt32),
        req(col::HEIGHT, T::UInt32),
        req(col::WIDTH, T::UInt32),
        req(col::VALUES, T::ListFloat32),
    ],
    axes_after: None,
};

/// Every table, in the order a sweep writes them.
pub const ALL: [&TableDef; 7] = [
    &TRIALS,
    &EPOCHS,
    &ITERATIONS,
    &CLASSES,
    &GATES,
    &SAMPLES,
    &FEATURE_MAPS,
];
