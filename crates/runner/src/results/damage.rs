//! Damaged trial records: files or lines whose checksum does not match what was written
//! ([`RecordError::Damaged`], [`ablate_model::integrity`]), and what happens to them
//! (docs/reliability.md). Every case is named in a warning and the damaged bytes are kept in the
//! trial's `damaged/` folder for inspection; none makes a trial fail twice.
//!
//! - `status.json` (read by the sweep and the trial): set aside; the trial counts as pending, so
//!   the sweep runs it again and it continues from its checkpoint ([`read_status`]).
//! - `iterations.jsonl`, `epochs.jsonl`, before a trial starts: the intact records before the
//!   first damaged one are kept, and checkpoints past them are set aside, so the trial continues
//!   from the newest checkpoint those records cover, or starts over ([`repair_before_resume`]).
//! - Any record of a finished trial, when the Parquet files are rebuilt: the trial is marked
//!   `failed` with the reason, so the next sweep runs it again ([`mark_for_rerun`]).

use std::fs;
use std::path::Path;

use ablate_model::train::checkpoint;

use super::records::{
    files, jsonl_line, read_json_opt, read_jsonl_prefix, write_atomic, write_json_atomic,
    EpochLine, IterationLine, RecordError, TrialState, TrialStatus,
};

/// The folder of a trial (or of its checkpoint folder) damaged files are moved to.
pub const DAMAGED_DIR: &str = "damaged";

/// Whether `e` says the bytes read are not the ones written (a checksum mismatch, or JSON that
/// does not parse where the writer always writes whole files).
pub fn is_damage(e: &RecordError) -> bool {
    matches!(
        e,
        RecordError::Damaged { .. } | RecordError::Json { .. } | RecordError::JsonLine { .. }
    )
}

/// `e` and its causes on one line.
fn describe(e: &RecordError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Moves (`copy`: copies) `path` into the `damaged/` folder beside it; returns what was done,
/// for the warning.
fn set_aside(path: &Path, copy: bool) -> String {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return "left in place".into();
    };
    let target = dir.join(DAMAGED_DIR);
    let dest = target.join(name);
    let done = fs::create_dir_all(&target).and_then(|()| {
        if copy {
            fs::copy(path, &dest).map(|_| ())
        } else {
            fs::rename(path, &dest)
        }
    });
    match done {
        Ok(()) if copy => format!("a copy is in {}", dest.display()),
        Ok(()) => format!("moved to {}", dest.display()),
        Err(e) => format!("could not be set aside ({e})"),
    }
}

/// Reads a trial's `status.json`. A damaged one is named in a warning (stderr: the sweep's
/// terminal, or the trial's log), moved to `damaged/`, and reads as absent: the trial is pending
/// and continues from its checkpoint when it runs.
pub fn read_status(path: &Path) -> Result<Option<TrialStatus>, RecordError> {
    match read_json_opt::<TrialStatus>(path) {
        Ok(s) => Ok(s),
        Err(e) if is_damage(&e) => {
            let moved = set_aside(path, false);
            eprintln!(
                "warning: {}; {moved}; the trial runs again, from its checkpoint",
                describe(&e)
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// How many leading records of a prefix are the run's first ones, in order.
fn contiguous<T>(records: &[T], index: impl Fn(&T) -> u64, first: u64) -> u64 {
    records
        .iter()
        .enumerate()
        .take_while(|(i, r)| index(r) == *i as u64 + first)
        .count() as u64
}

/// Before a trial starts: if a metric file has a damaged record, keeps the intact records before
/// it (the original is copied to `damaged/`); then sets aside the checkpoints past the intact
/// records, whose steps would be missing (after damage, a file cut at a line boundary, or records
/// lost to a kill between a checkpoint and the flush of the steps before it). Returns whether
/// anything was damaged or set aside.
pub fn repair_before_resume(dir: &Path) -> Result<bool, RecordError> {
    let it_path = dir.join(files::ITERATIONS);
    let ep_path = dir.join(files::EPOCHS);
    let (iterations, it_damage) = read_jsonl_prefix::<IterationLine>(&it_path)?;
    let (epochs, ep_damage) = read_jsonl_prefix::<EpochLine>(&ep_path)?;
    for (path, damage, kept) in [
        (&it_path, &it_damage, iterations.len()),
        (&ep_path, &ep_damage, epochs.len()),
    ] {
        if let Some(e) = damage {
            let copied = set_aside(path, true);
            eprintln!(
                "warning: {}; {copied}; keeping the {kept} records before it",
                describe(e)
            );
        }
    }
    let mut text = Vec::new();
    let damaged = it_damage.is_some() || ep_damage.is_some();
    if it_damage.is_some() {
        for r in &iterations {
            text.extend_from_slice(&jsonl_line(&it_path, r)?);
        }
        write_atomic(&it_path, &text)?;
        text.clear();
    }
    if ep_damage.is_some() {
        for r in &epochs {
            text.extend_from_slice(&jsonl_line(&ep_path, r)?);
        }
        write_atomic(&ep_path, &text)?;
    }
    let steps = contiguous(&iterations, |r| r.iteration, 0);
    let done = contiguous(&epochs, |r| u64::from(r.epoch), 1) as u32;
    let set = checkpoint::discard_beyond(&dir.join(files::CHECKPOINT), done, steps);
    if set > 0 {
        eprintln!(
            "warning: {set} checkpoint{} of {} past the intact records ({done} epochs, {steps} \
             steps) set aside",
            if set == 1 { "" } else { "s" },
            dir.display()
        );
    }
    Ok(damaged || set > 0)
}

/// After damage was found in the records of a finished trial (`reason`): marks it `failed` with
/// the reason, so that the next sweep runs it again. A trial that is not finished runs again
/// anyway and is left as it is. A status that cannot be written is named in the warning only.
pub fn mark_for_rerun(dir: &Path, status: &mut TrialStatus, reason: &str) {
    let finished = status.status.is_final();
    eprintln!(
        "warning: {reason}; {}",
        if finished {
            "the trial is marked failed and the next sweep runs it again"
        } else {
            "the trial runs again when the sweep runs"
        }
    );
    if !finished {
        return;
    }
    status.status = TrialState::Failed;
    status.error = Some(format!(
        "damaged records: {reason}; run the sweep again to train the trial again"
    ));
    if let Err(e) = write_json_atomic(&dir.join(files::STATUS), status) {
        eprintln!("warning: {}", describe(&e));
    }
}

/// For the Parquet rebuild: whether a completed trial's records hold as many epochs and steps as
/// its final checkpoint says it trained (a file cut at a line boundary has no damaged line);
/// pushes the mismatch to `problems`.
pub fn check_complete(
    dir: &Path,
    status: &TrialStatus,
    epochs: usize,
    steps: usize,
    problems: &mut Vec<String>,
) {
    if status.status != TrialState::Completed {
        return;
    }
    let Some((next_epoch, done_steps)) = checkpoint::position(&dir.join(files::CHECKPOINT)) else {
        return;
    };
    let want_epochs = next_epoch.saturating_sub(1) as usize;
    if epochs != want_epochs || steps as u64 != done_steps {
        problems.push(format!(
            "the records of {} are incomplete: {epochs} epochs and {steps} steps, its checkpoint \
             trained {want_epochs} and {done_steps}",
            dir.display()
        ));
    }
}

/// Reads an optional JSON record of a finished trial (`final.json`, `inside.json`) for the
/// Parquet rebuild: a damaged one is moved to `damaged/` and reads as absent; the reason is
/// pushed to `problems`.
pub fn read_record_opt<T: serde::de::DeserializeOwned>(
    path: &Path,
    problems: &mut Vec<String>,
) -> Result<Option<T>, RecordError> {
    match read_json_opt(path) {
        Ok(v) => Ok(v),
        Err(e) if is_damage(&e) => {
            let moved = set_aside(path, false);
            problems.push(format!("{} ({moved})", describe(&e)));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_counts_the_leading_run() {
        let v = [0u64, 1, 2, 4, 5];
        assert_eq!(contiguous(&v, |x| *x, 0), 3);
        assert_eq!(contiguous(&[1u64, 2], |x| *x, 1), 2);
        assert_eq!(contiguous(&[2u64], |x| *x, 1), 0);
    }
}
