//! Everything read back from one trial folder (its config header, status and metric records),
//! and the list of a sweep's trial folders: the input of the Parquet rebuild. Damaged records
//! are read up to the damage and the trial is marked to run again ([`super::damage`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::damage;
use super::records::{
    files, header_row, read_jsonl_prefix, EpochLine, FinalJson, InsideJson, IterationLine,
    RecordError, TrialRow, TrialStatus,
};

/// Errors reading a trial folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A trial record could not be read.
    #[error("cannot read the records of trial folder {dir}")]
    Record {
        /// The trial folder.
        dir: PathBuf,
        /// The cause (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<RecordError>,
    },
    /// A folder or file could not be listed or read.
    #[error("cannot access {path}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything read from one trial folder.
#[derive(Debug, Clone)]
pub struct TrialRecords {
    /// The trial folder.
    pub dir: PathBuf,
    /// Its row of `trials.parquet` as far as `config.toml` says ([`header_row`]).
    pub header: TrialRow,
    /// `status.json` (pending when absent).
    pub status: TrialStatus,
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
    pub fn read(dir: &Path) -> Result<Option<Self>, FolderError> {
        let rec = |source| FolderError::Record {
            dir: dir.to_path_buf(),
            source: Box::new(source),
        };
        let config_path = dir.join(files::CONFIG);
        let config = match fs::read_to_string(&config_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FolderError::Io {
                    path: config_path,
                    source: e,
                })
            }
        };
        let header = header_row(&config_path, &config).map_err(rec)?;
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
            header,
            status,
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
pub fn trial_dirs(sweep_dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let trials = sweep_dir.join("trials");
    let rd = match fs::read_dir(&trials) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(FolderError::Io {
                path: trials,
                source: e,
            })
        }
    };
    let mut dirs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| FolderError::Io {
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
