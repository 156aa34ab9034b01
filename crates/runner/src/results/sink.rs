//! The child side of a trial's records: appends iterations and epochs to the trial folder's
//! JSON-lines files and keeps `status.json` current.
//!
//! Resume safety: the trainer resumes from its last checkpoint (written after every epoch and on
//! interruption, possibly mid-epoch), which may be older than the last records written (a child
//! killed after writing records but before its next checkpoint). The first record a run delivers
//! says where it starts (epoch `e`, global iteration `i`); before appending it, every iteration
//! record from `i` on and every epoch record from `e` on is dropped, so the files never hold
//! duplicated or missing steps or epochs.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::records::{
    files, jsonl_line, now_rfc3339, read_jsonl, truncate_jsonl, write_json_atomic, EpochLine,
    IterationLine, RecordError, TrialState, TrialStatus,
};

/// How often buffered iteration records are flushed, so that progress displays stay current.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Where a resumed run starts: records at or past it are dropped.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Keep iteration records with `iteration` below this.
    iterations_before: u64,
    /// Keep iteration records with `epoch` at most this.
    last_iteration_epoch: u32,
    /// Keep epoch records with `epoch` below this.
    epochs_before: u32,
}

/// Writes a trial's metric records into its folder (see the module docs).
#[derive(Debug)]
pub struct TrialWriter {
    dir: PathBuf,
    iterations: Option<BufWriter<File>>,
    epochs: Option<File>,
    last_flush: Instant,
    /// The status as last written.
    status: TrialStatus,
    /// Epoch records in `epochs.jsonl` (after the resume truncation).
    epoch_records: Vec<EpochLine>,
}

impl TrialWriter {
    /// Opens the writer for a trial folder with the status the child starts from.
    pub fn new(dir: &Path, status: TrialStatus) -> Self {
        Self {
            dir: dir.to_path_buf(),
            iterations: None,
            epochs: None,
            last_flush: Instant::now(),
            status,
            epoch_records: Vec::new(),
        }
    }

    /// The trial folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The status as last written.
    pub fn status(&self) -> &TrialStatus {
        &self.status
    }

    /// Updates the status with `f` and writes it atomically.
    pub fn update_status(&mut self, f: impl FnOnce(&mut TrialStatus)) -> Result<(), RecordError> {
        f(&mut self.status);
        write_json_atomic(&self.dir.join(files::STATUS), &self.status)
    }

    /// Drops the records at or past `cut` and opens both files for appending. Called once, at
    /// the first record of this run.
    fn begin(&mut self, cut: Cut) -> Result<(), RecordError> {
        let it_path = self.dir.join(files::ITERATIONS);
        let ep_path = self.dir.join(files::EPOCHS);
        truncate_jsonl(&it_path, |l: &IterationLine| {
            l.iteration < cut.iterations_before && l.epoch <= cut.last_iteration_epoch
        })?;
        truncate_jsonl(&ep_path, |l: &EpochLine| l.epoch < cut.epochs_before)?;
        self.epoch_records = read_jsonl(&ep_path)?;
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| RecordError::io(p, e))
        };
        self.iterations = Some(BufWriter::with_capacity(64 * 1024, open(&it_path)?));
        self.epochs = Some(open(&ep_path)?);
        Ok(())
    }

    fn ensure_begun(&mut self, cut: Cut) -> Result<(), RecordError> {
        if self.iterations.is_none() {
            self.begin(cut)?;
        }
        Ok(())
    }

    /// Appends one training step. Flushed at most every 250 ms (and at each epoch's end).
    pub fn iteration(&mut self, rec: IterationLine) -> Result<(), RecordError> {
        self.ensure_begun(Cut {
            iterations_before: rec.iteration,
            last_iteration_epoch: u32::MAX,
            epochs_before: rec.epoch,
        })?;
        let path = self.dir.join(files::ITERATIONS);
        let line = jsonl_line(&path, &rec)?;
        let w = self.iterations.as_mut().expect("begun");
        w.write_all(&line).map_err(|e| RecordError::io(&path, e))?;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            w.flush().map_err(|e| RecordError::io(&path, e))?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    /// Appends one epoch, fsyncs both files and updates `status.json` (epochs done, training
    /// seconds).
    pub fn epoch(&mut self, rec: EpochLine) -> Result<(), RecordError> {
        self.ensure_begun(Cut {
            iterations_before: u64::MAX,
            last_iteration_epoch: rec.epoch,
            epochs_before: rec.epoch,
        })?;
        self.sync_iterations()?;
        let path = self.dir.join(files::EPOCHS);
        let line = jsonl_line(&path, &rec)?;
        let f = self.epochs.as_mut().expect("begun");
        f.write_all(&line).map_err(|e| RecordError::io(&path, e))?;
        f.sync_data().map_err(|e| RecordError::io(&path, e))?;
        self.epoch_records.push(rec);
        let done = self.epoch_records.len() as u32;
        let secs: f64 = self.epoch_records.iter().map(|e| e.seconds).sum();
        self.update_status(|s| {
            s.epochs_done = done;
            s.train_seconds = secs;
        })
    }

    fn sync_iterations(&mut self) -> Result<(), RecordError> {
        let path = self.dir.join(files::ITERATIONS);
        if let Some(w) = self.iterations.as_mut() {
            w.flush().map_err(|e| RecordError::io(&path, e))?;
            w.get_ref()
                .sync_data()
                .map_err(|e| RecordError::io(&path, e))?;
            self.last_flush = Instant::now();
        }
        Ok(())
    }

    /// Flushes everything at the end of a run that trained `epochs` epochs and `iterations` steps
    /// in all (the trainer's totals): if this run delivered no record at all (it resumed from
    /// the checkpoint after the last epoch), records past those totals are dropped here.
    /// Returns the epoch records now in `epochs.jsonl`.
    pub fn flush_all(&mut self, epochs: u32, iterations: u64) -> Result<&[EpochLine], RecordError> {
        self.ensure_begun(Cut {
            iterations_before: iterations,
            last_iteration_epoch: u32::MAX,
            epochs_before: epochs + 1,
        })?;
        self.sync_iterations()?;
        Ok(&self.epoch_records)
    }

    /// Flushes what was written, without truncating anything (a run that ends before its first
    /// record, e.g. interrupted at once).
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.sync_iterations()
    }

    /// Marks the trial ended with `state` and `exit_code`, and writes `status.json`.
    pub fn end(
        &mut self,
        state: TrialState,
        exit_code: i32,
        error: Option<String>,
    ) -> Result<(), RecordError> {
        self.update_status(|s| {
            s.status = state;
            s.exit_code = Some(exit_code);
            s.signal = None;
            s.error = error;
            s.ended_at = Some(now_rfc3339());
            s.pid = None;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(epoch: u32, step: u32) -> IterationLine {
        IterationLine {
            epoch,
            step,
            iteration: ((epoch - 1) * 3 + step) as u64,
            loss: 2.0,
        }
    }

    fn ep(epoch: u32) -> EpochLine {
        EpochLine {
            epoch,
            train_loss: 1.0,
            train_acc: 0.5,
            test_loss: 1.0,
            test_acc: 0.5,
            lr: 1e-3,
            seconds: 2.0,
            images_per_sec: 100.0,
        }
    }

    /// A run killed during epoch 3 after the checkpoint of epoch 2, then resumed from epoch 3:
    /// the files end with exactly epochs 1..=4 and 3 steps per epoch.
    #[test]
    fn resume_drops_records_past_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        for e in 1..=2 {
            for s in 0..3 {
                w.iteration(it(e, s)).unwrap();
            }
            w.epoch(ep(e)).unwrap();
        }
        // epoch 3 half done, and its epoch line written without a checkpoint
        w.iteration(it(3, 0)).unwrap();
        w.iteration(it(3, 1)).unwrap();
        w.epoch(ep(3)).unwrap();
        drop(w);

        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        for e in 3..=4 {
            for s in 0..3 {
                w.iteration(it(e, s)).unwrap();
            }
            w.epoch(ep(e)).unwrap();
        }
        let epochs = w.flush_all(4, 12).unwrap().to_vec();
        assert_eq!(
            epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let its: Vec<IterationLine> = read_jsonl(&dir.path().join(files::ITERATIONS)).unwrap();
        assert_eq!(its.len(), 12);
        for (i, l) in its.iter().enumerate() {
            assert_eq!(l.iteration, i as u64);
        }
        assert_eq!(w.status().epochs_done, 4);
        assert_eq!(w.status().train_seconds, 8.0);
    }

    /// Interrupted mid-epoch: the checkpoint holds epoch 2 step 1 (iteration 4); the killed run
    /// had written steps up to iteration 5 already.
    #[test]
    fn resume_mid_epoch_keeps_the_steps_before_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        for s in 0..3 {
            w.iteration(it(1, s)).unwrap();
        }
        w.epoch(ep(1)).unwrap();
        w.iteration(it(2, 0)).unwrap();
        w.iteration(it(2, 1)).unwrap();
        w.iteration(it(2, 2)).unwrap();
        drop(w);
        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        w.iteration(it(2, 1)).unwrap();
        w.iteration(it(2, 2)).unwrap();
        w.epoch(ep(2)).unwrap();
        w.flush_all(2, 6).unwrap();
        let its: Vec<IterationLine> = read_jsonl(&dir.path().join(files::ITERATIONS)).unwrap();
        let idx: Vec<u64> = its.iter().map(|l| l.iteration).collect();
        assert_eq!(idx, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn resume_after_the_last_epoch_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        for e in 1..=2 {
            w.iteration(it(e, 0)).unwrap();
            w.epoch(ep(e)).unwrap();
        }
        drop(w);
        let mut w = TrialWriter::new(dir.path(), TrialStatus::pending());
        assert_eq!(w.flush_all(2, 2).unwrap().len(), 2);
    }
}
