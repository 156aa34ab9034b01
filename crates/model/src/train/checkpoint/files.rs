//! The files of a checkpoint folder (see [`super`]): writing a checkpoint, and
//! reading one back with every byte verified.
//!
//! Layout of a checkpoint folder:
//!
//! | file | content |
//! | --- | --- |
//! | `state.json` | the newest checkpoint: [`CheckpointState`], `files` (each tensor file's length and SHA-256), sealed by a `sha256` member |
//! | `state.prev.json` | the checkpoint before it, the same way (the fallback) |
//! | `model-eEEEE-sSSSSSS-HHHHHHHH.safetensors` | weights named by a state file (`HHHHHHHH`: the start of their SHA-256) |
//! | `optimizer-eEEEE-sSSSSSS-HHHHHHHH.safetensors` | optimizer state named by a state file |
//! | `damaged/` | files found damaged, moved aside for inspection |
//!
//! The hash in a tensor file's name makes names content-addressed: a checkpoint rewritten at the
//! same position (epoch end, then interrupted before the first step) never replaces the bytes
//! the other state file recorded.
//!
//! Reading ([`recover`]): `state.json` if it and both its tensor files are intact, else
//! `state.prev.json` likewise, else nothing (the run starts over). Every damaged or missing file
//! is named in a warning and moved to `damaged/`, so the next attempt does not meet it again:
//! damage never makes a trial fail twice. A state file without a `sha256` member was written
//! before checksums existed; it and its tensors are read unchecked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{CheckpointError, CheckpointState, DAMAGED_DIR, PREVIOUS_STATE_FILE, STATE_FILE};
use crate::integrity::{self, FileRecord};
use crate::weights;

/// The state file's member holding the tensor files' records.
const FILES_MEMBER: &str = "files";

/// A state file read back and parsed.
struct StateFile {
    state: CheckpointState,
    /// Tensor file name -> its record (empty for a state file from before checksums).
    files: BTreeMap<String, FileRecord>,
    /// Whether the state file carried its checksum.
    sealed: bool,
}

/// Why a checkpoint cannot be used.
enum Unusable {
    /// Damaged or missing files (moved aside, then the next checkpoint is tried).
    Damaged {
        /// The files to move aside (the state file first).
        files: Vec<PathBuf>,
        /// The file at fault and what is wrong, for the warning.
        reason: String,
    },
    /// Not a property of the bytes (a permission, an I/O error): the caller's error.
    Fatal(Box<CheckpointError>),
}

fn io_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Whether `dir` holds a usable checkpoint. Runs [`recover`] (damaged files are moved aside
/// and named in a warning); an I/O error other than damage answers `true`, so that
/// [`read_state`] reports it.
pub fn exists(dir: &Path) -> bool {
    recover(dir).map_or(true, |s| s.is_some())
}

/// The newest intact checkpoint's state (see [`recover`]); an error when there is none.
pub fn read_state(dir: &Path) -> Result<CheckpointState, CheckpointError> {
    recover(dir)?.ok_or_else(|| CheckpointError::Invalid {
        path: dir.join(STATE_FILE),
        reason: "the folder holds no intact checkpoint".into(),
    })
}

/// The newest checkpoint of `dir` whose state file and tensor files are all intact, or `None`
/// when there is none (no checkpoint yet, or all damaged: the run starts over). Damaged and
/// missing files are named in a warning (tracing) and moved to `dir/damaged/`.
pub fn recover(dir: &Path) -> Result<Option<CheckpointState>, CheckpointError> {
    let mut damaged = false;
    for name in [STATE_FILE, PREVIOUS_STATE_FILE] {
        match load(dir, name) {
            Ok(None) => {}
            Ok(Some(found)) => {
                if damaged {
                    tracing::warn!(
                        "continuing from the previous checkpoint {} (epoch {}, step {})",
                        dir.join(name).display(),
                        found.state.epoch,
                        found.state.step
                    );
                }
                if !found.sealed {
                    tracing::info!(
                        "checkpoint {} was written before checksums: read unchecked",
                        dir.join(name).display()
                    );
                }
                return Ok(Some(found.state));
            }
            Err(Unusable::Damaged { files, reason }) => {
                damaged = true;
                let moved = quarantine(dir, &files);
                tracing::warn!("damaged checkpoint in {}: {reason}; {moved}", dir.display());
            }
            Err(Unusable::Fatal(e)) => return Err(*e),
        }
    }
    if damaged {
        tracing::warn!(
            "no intact checkpoint left in {}: the run starts over from its first step",
            dir.display()
        );
    }
    Ok(None)
}

/// The position of the newest checkpoint of `dir` whose state file is intact: the epoch to run
/// next and the steps done. The tensor files are not read (a cheap consistency check of the
/// records written beside a checkpoint); `None` without such a state file.
pub fn position(dir: &Path) -> Option<(u32, u64)> {
    [STATE_FILE, PREVIOUS_STATE_FILE].iter().find_map(|name| {
        let bytes = fs::read(dir.join(name)).ok()?;
        let s = parse_state_file(&bytes).ok()?.state;
        Some((s.epoch, s.iteration))
    })
}

/// Sets aside (moves to `damaged/`, naming them in a warning) the state files of `dir` whose
/// checkpoint is past `epochs` finished epochs or `iterations` steps: the caller lost the
/// records of the run up to them, so continuing from them would leave a gap. Unreadable state
/// files are left to [`recover`]. Returns how many were set aside.
pub fn discard_beyond(dir: &Path, epochs: u32, iterations: u64) -> usize {
    let mut n = 0;
    for name in [STATE_FILE, PREVIOUS_STATE_FILE] {
        let path = dir.join(name);
        let Ok(bytes) = fs::read(&path) else { continue };
        let Ok(found) = parse_state_file(&bytes) else {
            continue;
        };
        let s = &found.state;
        if s.epoch.saturating_sub(1) > epochs || s.iteration > iterations {
            let moved = quarantine(dir, std::slice::from_ref(&path));
            tracing::warn!(
                "checkpoint {} (epoch {}, step {}) is past the intact records ({epochs} epochs, \
                 {iterations} steps): not used; {moved}",
                path.display(),
                s.epoch,
                s.step
            );
            n += 1;
        }
    }
    n
}

/// Reads and verifies the state file `name` of `dir` and the two tensor files it names.
fn load(dir: &Path, name: &str) -> Result<Option<StateFile>, Unusable> {
    let path = dir.join(name);
    let Some(bytes) = read_opt(&path).map_err(|e| Unusable::Fatal(Box::new(e)))? else {
        return Ok(None);
    };
    let found = parse_state_file(&bytes).map_err(|reason| Unusable::Damaged {
        files: vec![path.clone()],
        reason: format!("{}: {reason}", path.display()),
    })?;
    for file in [&found.state.weights_file, &found.state.optimizer_file] {
        let damaged = |reason: String, with_file: bool| {
            let mut files = vec![path.clone()];
            if with_file {
                files.push(dir.join(file));
            }
            Unusable::Damaged { files, reason }
        };
        if !is_plain_name(file) {
            return Err(damaged(
                format!(
                    "{}: names `{file}`, not a file of its folder",
                    path.display()
                ),
                false,
            ));
        }
        let file_path = dir.join(file);
        let record = found.files.get(file.as_str());
        if found.sealed && record.is_none() {
            return Err(damaged(
                format!("{}: has no record of `{file}`", path.display()),
                false,
            ));
        }
        let Some(data) = read_opt(&file_path).map_err(|e| Unusable::Fatal(Box::new(e)))? else {
            return Err(damaged(
                format!(
                    "{} is missing (named by {})",
                    file_path.display(),
                    path.display()
                ),
                false,
            ));
        };
        if let Some(record) = record {
            record
                .check(&data)
                .map_err(|d| damaged(format!("{}: {d}", file_path.display()), true))?;
        }
    }
    Ok(Some(found))
}

/// A state file's bytes as its state and records, or what is wrong with them.
fn parse_state_file(bytes: &[u8]) -> Result<StateFile, String> {
    let opened = integrity::open_json(bytes).map_err(|d| d.to_string())?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&opened.json).map_err(|e| format!("not valid JSON ({e})"))?;
    let files = match value.as_object_mut().and_then(|m| m.remove(FILES_MEMBER)) {
        Some(f) => serde_json::from_value(f).map_err(|e| format!("bad `files` member ({e})"))?,
        None if opened.sealed => return Err("no `files` member".into()),
        None => BTreeMap::new(),
    };
    let state: CheckpointState =
        serde_json::from_value(value).map_err(|e| format!("not a checkpoint state ({e})"))?;
    Ok(StateFile {
        state,
        files,
        sealed: opened.sealed,
    })
}

/// The file's bytes, `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, CheckpointError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "read")(e)),
    }
}

/// A bare file name (what the writer records), not a path.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).is_relative()
}

/// Moves `files` into `dir/damaged/` (replacing older files of the same name there); returns
/// what was done, for the warning. A file that cannot be moved is removed, so that it is not
/// met again; failing that too, it is left and named.
fn quarantine(dir: &Path, files: &[PathBuf]) -> String {
    let target = dir.join(DAMAGED_DIR);
    let _ = fs::create_dir_all(&target);
    let mut left = Vec::new();
    for f in files {
        let Some(name) = f.file_name() else { continue };
        if !f.exists() {
            continue;
        }
        if fs::rename(f, target.join(name)).is_err() && fs::remove_file(f).is_err() {
            left.push(f.display().to_string());
        }
    }
    if left.is_empty() {
        format!("moved to {}", target.display())
    } else {
        format!(
            "moved to {} (could not move {})",
            target.display(),
            left.join(", ")
        )
    }
}

/// Reads a tensor file of a checkpoint onto `device`, verifying its bytes against the record of
/// the state file (newest or previous) that names it.
pub fn read_tensors(
    path: &Path,
    device: &Device,
) -> Result<std::collections::HashMap<String, Tensor>, CheckpointError> {
    let Some(data) = read_opt(path)? else {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason: "the file named by state.json is missing".into(),
        });
    };
    if let Some(record) = record_of(path) {
        record.check(&data).map_err(|d| CheckpointError::Damaged {
            path: path.to_path_buf(),
            reason: d.to_string(),
        })?;
    }
    weights::read_safetensors_bytes(&data, device).map_err(|source| CheckpointError::Tensor {
        path: path.to_path_buf(),
        what: "read failed",
        source,
    })
}

/// The record of tensor file `path` in the state files of its folder, if one names it.
fn record_of(path: &Path) -> Option<FileRecord> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    [STATE_FILE, PREVIOUS_STATE_FILE].iter().find_map(|s| {
        let bytes = fs::read(dir.join(s)).ok()?;
        parse_state_file(&bytes).ok()?.files.remove(name)
    })
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes a tensor file named after `prefix`, the position `tag` and its hash; returns its name
/// and record.
fn write_tensor_file(
    dir: &Path,
    prefix: &str,
    tag: &str,
    tensors: &std::collections::HashMap<String, Tensor>,
) -> Result<(String, FileRecord), CheckpointError> {
    let mut list: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let data = weights::safetensors_bytes(&list).map_err(|source| CheckpointError::Tensor {
        path: dir.join(format!("{prefix}-{tag}.safetensors")),
        what: "cannot serialize",
        source,
    })?;
    let record = FileRecord::of(&data);
    let name = format!("{prefix}-{tag}-{}.safetensors", &record.sha256[..8]);
    let path = dir.join(&name);
    weights::write_file_atomic(&path, &data).map_err(io_err(&path, "write"))?;
    Ok((name, record))
}

/// The bytes of a state file: the state, the tensor files' records, sealed.
fn state_file_bytes(
    state: &CheckpointState,
    files: &BTreeMap<String, FileRecord>,
    path: &Path,
) -> Result<Vec<u8>, CheckpointError> {
    let json = |source| CheckpointError::Json {
        path: path.to_path_buf(),
        source,
    };
    let mut value = serde_json::to_value(state).map_err(json)?;
    let files = serde_json::to_value(files).map_err(json)?;
    if let Some(m) = value.as_object_mut() {
        m.insert(FILES_MEMBER.into(), files);
    }
    let pretty = serde_json::to_vec_pretty(&value).map_err(json)?;
    Ok(integrity::seal_json(&pretty))
}

/// Writes a checkpoint: the two tensor files, then the state file (whose `weights_file` /
/// `optimizer_file` are set here), which becomes `state.json` while the previous `state.json`
/// becomes `state.prev.json`; then removes tensor and temporary files neither state file names.
/// A failure (a full disk) leaves the checkpoints there were before, and no temporary file.
pub fn write(
    dir: &Path,
    mut state: CheckpointState,
    weights: &std::collections::HashMap<String, Tensor>,
    optimizer: &std::collections::HashMap<String, Tensor>,
) -> Result<(), CheckpointError> {
    fs::create_dir_all(dir).map_err(io_err(dir, "create folder"))?;
    let tag = format!("e{:04}-s{:06}", state.epoch, state.step);
    let mut files = BTreeMap::new();
    let (name, record) = write_tensor_file(dir, "model", &tag, weights)?;
    state.weights_file = name.clone();
    files.insert(name, record);
    let (name, record) = write_tensor_file(dir, "optimizer", &tag, optimizer)?;
    state.optimizer_file = name.clone();
    files.insert(name, record);

    let path = dir.join(STATE_FILE);
    let tmp = tmp_name(&path);
    let bytes = state_file_bytes(&state, &files, &path)?;
    let written = fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .map_err(io_err(&tmp, "write"));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let prev = dir.join(PREVIOUS_STATE_FILE);
    if path.exists() {
        fs::rename(&path, &prev).map_err(io_err(&prev, "rename"))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path, "rename"))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    remove_unnamed(dir, files.into_keys().collect());
    Ok(())
}

/// Removes the tensor files and temporary files of this folder that neither state file names
/// (`keep`: the new state's files). Failing to remove one is harmless.
fn remove_unnamed(dir: &Path, mut keep: BTreeSet<String>) {
    if let Ok(bytes) = fs::read(dir.join(PREVIOUS_STATE_FILE)) {
        if let Ok(prev) = parse_state_file(&bytes) {
            keep.insert(prev.state.weights_file);
            keep.insert(prev.state.optimizer_file);
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let bare = name.strip_prefix('.').unwrap_or(&name);
        let tensors = (bare.starts_with("model-") || bare.starts_with("optimizer-"))
            && (bare.ends_with(".safetensors") || bare.contains(".safetensors.tmp"));
        let ours = tensors || bare.starts_with("state.json.tmp");
        if ours && !keep.contains(&name) && e.path().is_file() {
            let _ = fs::remove_file(e.path());
        }
    }
}
