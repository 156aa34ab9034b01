//! The JSON and JSON-lines files of a trial folder: read, written atomically (a temporary file
//! in the same folder, fsynced, then renamed), truncated on resume, and read from the tail.
//!
//! The JSON files are sealed with a SHA-256 and every JSON-lines record with a CRC-32
//! ([`ablate_model::integrity`]); a damaged file or line reads as [`RecordError::Damaged`],
//! handled in [`super::damage`]. Files and lines from before checksums are read unchecked.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ablate_model::integrity;
use serde::{de::DeserializeOwned, Serialize};

/// Errors reading or writing a trial record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A JSON file is malformed.
    #[error("malformed json in {path}")]
    Json {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// `config.toml` is not TOML or lacks a header key.
    #[error("malformed trial config {path}")]
    Toml {
        /// The file at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: toml::de::Error,
    },
    /// A file or line whose checksum does not match what was written.
    #[error("{} is damaged{}: {reason}", path.display(), line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Damaged {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number, for a JSON-lines record.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A JSON-lines file has a malformed line (other than a torn last line).
    #[error("malformed line {line} in {path}")]
    JsonLine {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl RecordError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Current time as RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Reads, verifies and parses a JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RecordError> {
    let bytes = fs::read(path).map_err(|e| RecordError::io(path, e))?;
    parse_sealed(path, &bytes)
}

/// Reads a JSON file that may be absent.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RecordError> {
    match fs::read(path) {
        Ok(bytes) => parse_sealed(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::io(path, e)),
    }
}

/// Checks a sealed JSON file's checksum (a file from before checksums is read as is) and parses it.
fn parse_sealed<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, RecordError> {
    let opened = integrity::open_json(bytes).map_err(|d| RecordError::Damaged {
        path: path.to_path_buf(),
        line: None,
        reason: d.to_string(),
    })?;
    serde_json::from_slice(&opened.json).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One JSON-lines record, sealed with its CRC-32, with its newline.
pub fn jsonl_line<T: Serialize>(path: &Path, rec: &T) -> Result<Vec<u8>, RecordError> {
    let json = serde_json::to_vec(rec).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let mut line = integrity::seal_line(&json);
    line.push(b'\n');
    Ok(line)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsynced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| RecordError::io(path, e))?;
    tmp.write_all(bytes).map_err(|e| RecordError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| RecordError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| RecordError::io(path, e.error))?;
    Ok(())
}

/// Serializes `value` as pretty JSON, sealed with its SHA-256, and writes it atomically.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), RecordError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| RecordError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &integrity::seal_json(&bytes))
}

/// Reads a JSON-lines file. A torn last line (no trailing newline, as left by a killed writer)
/// is ignored; any other malformed or damaged line is an error. A missing file reads as empty.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, RecordError> {
    match read_text(path)? {
        Some(text) => parse_jsonl(path, &text),
        None => Ok(Vec::new()),
    }
}

/// A text file's content (bytes that are not UTF-8, e.g. damaged ones, replaced so that the
/// record's checksum reports them), `None` when it does not exist.
fn read_text(path: &Path) -> Result<Option<String>, RecordError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::io(path, e)),
    }
}

fn parse_jsonl<T: DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>, RecordError> {
    let (records, damage) = parse_jsonl_prefix(path, text);
    match damage {
        Some(e) => Err(e),
        None => Ok(records),
    }
}

/// Reads a JSON-lines file up to its first damaged or malformed record: the records before it,
/// and the error of that record (`None` when the whole file is intact). A torn last line is
/// ignored, as by [`read_jsonl`].
pub fn read_jsonl_prefix<T: DeserializeOwned>(
    path: &Path,
) -> Result<(Vec<T>, Option<RecordError>), RecordError> {
    Ok(match read_text(path)? {
        Some(text) => parse_jsonl_prefix(path, &text),
        None => (Vec::new(), None),
    })
}

fn parse_jsonl_prefix<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> (Vec<T>, Option<RecordError>) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut out = Vec::new();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body = match integrity::open_line(line) {
            Ok(b) => b,
            Err(d) => {
                let e = RecordError::Damaged {
                    path: path.to_path_buf(),
                    line: Some(i + 1),
                    reason: d.to_string(),
                };
                return (out, Some(e));
            }
        };
        match serde_json::from_str(&body) {
            Ok(rec) => out.push(rec),
            Err(source) => {
                let e = RecordError::JsonLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                };
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

/// Rewrites a JSON-lines file keeping only the records for which `keep` is true (and dropping a
/// torn last line); leaves the file untouched when nothing is dropped. Used when a trial resumes
/// from a checkpoint older than its last records, which would otherwise be duplicated.
/// Returns the number of records kept.
pub fn truncate_jsonl<T>(path: &Path, keep: impl Fn(&T) -> bool) -> Result<usize, RecordError>
where
    T: DeserializeOwned + Serialize,
{
    let Some(text) = read_text(path)? else {
        return Ok(0);
    };
    let records: Vec<T> = parse_jsonl(path, &text)?;
    let kept: Vec<&T> = records.iter().filter(|r| keep(r)).collect();
    if kept.len() == records.len() && (text.is_empty() || text.ends_with('\n')) {
        return Ok(kept.len());
    }
    let mut out = Vec::with_capacity(text.len());
    for rec in &kept {
        out.extend_from_slice(&jsonl_line(path, rec)?);
    }
    write_atomic(path, &out)?;
    Ok(kept.len())
}

/// Reads the last complete record of a JSON-lines file cheaply (only its tail is read).
/// Returns `None` when the file is missing, empty or its tail does not parse.
pub fn read_last_jsonl<T: DeserializeOwned>(path: &Path) -> Option<T> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(4096);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let end = text.rfind('\n')?;
    let body = &text[..end];
    let line = match body.rfind('\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return None,
    };
    serde_json::from_str(&integrity::open_line(line).ok()?).ok()
}

/// Returns the last `n` lines of a text file (lossy UTF-8), or an empty list if it is missing.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ablate_schema::{EpochLine, IterationLine};

    #[test]
    fn jsonl_ignores_torn_last_line_and_truncates_from_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("iterations.jsonl");
        let mut text = String::new();
        for epoch in 1..=3u32 {
            for step in 0..2u32 {
                let l = IterationLine {
                    epoch,
                    step,
                    iteration: ((epoch - 1) * 2 + step) as u64,
                    loss: 1.0,
                };
                text.push_str(&serde_json::to_string(&l).unwrap());
                text.push('\n');
            }
        }
        text.push_str("{\"epoch\":4,\"st"); // torn
        std::fs::write(&p, &text).unwrap();
        let all: Vec<IterationLine> = read_jsonl(&p).unwrap();
        assert_eq!(all.len(), 6);
        let last: IterationLine = read_last_jsonl(&p).unwrap();
        assert_eq!((last.epoch, last.step), (3, 1));
        let kept = truncate_jsonl(&p, |l: &IterationLine| l.epoch < 3).unwrap();
        assert_eq!(kept, 4);
        let after: Vec<IterationLine> = read_jsonl(&p).unwrap();
        assert_eq!(after.len(), 4);
        assert!(after.iter().all(|l| l.epoch < 3));
        assert!(std::fs::read_to_string(&p).unwrap().ends_with('\n'));
    }

    #[test]
    fn malformed_middle_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("epochs.jsonl");
        std::fs::write(&p, "not json\n{}\n").unwrap();
        let err = read_jsonl::<EpochLine>(&p).unwrap_err();
        assert!(
            matches!(err, RecordError::JsonLine { line: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn tail_lines_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.txt");
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let t = tail_lines(&p, 20);
        assert_eq!(t.len(), 20);
        assert_eq!(t[0], "line 30");
        assert_eq!(t[19], "line 49");
        assert!(tail_lines(&dir.path().join("missing"), 5).is_empty());
    }
}
