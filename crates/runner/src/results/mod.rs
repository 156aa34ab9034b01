//! Per-trial records and the Parquet files rebuilt from them (docs/results.md).
//!
//! | module | what |
//! | --- | --- |
//! | [`records`] | the files of a trial folder and their record types |
//! | [`json_files`] | reading and atomically writing those JSON and JSON-lines files, sealed with checksums |
//! | [`damage`] | damaged records: named, set aside, and the trial run again from what is intact |
//! | [`trial_folder`] | everything read back from one trial folder, and the list of folders |
//! | [`parquet`] | the sweep's Parquet files rebuilt from the trial folders, through `ablate_schema` |
//! | [`scan`] | the quick scan of trial states a sweep starts with |
//! | [`sink`] | the trial's writer of metric records |

pub mod damage;
pub mod json_files;
pub mod parquet;
pub mod records;
pub mod scan;
pub mod sink;
pub mod trial_folder;
