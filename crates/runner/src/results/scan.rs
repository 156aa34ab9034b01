//! The resume scan: which planned trials are already done.
//!
//! Reads only each trial's `status.json` (a few hundred bytes), so resuming a sweep of thousands
//! of trials costs milliseconds (benchmarked in `benches/resume_scan.rs`).

use std::path::Path;

use rayon::prelude::*;

use super::records::{files, RecordError, TrialState, TrialStatus};

/// Where a planned trial stands before a sweep starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanEntry {
    /// The trial id.
    pub trial_id: String,
    /// Its status, `None` when its folder or `status.json` does not exist yet.
    pub status: Option<TrialStatus>,
}

impl ScanEntry {
    /// The state to plan with: missing is pending.
    pub fn state(&self) -> TrialState {
        self.status
            .as_ref()
            .map_or(TrialState::Pending, |s| s.status)
    }

    /// Whether the sweep must (re)run the trial: anything but completed or diverged.
    pub fn needs_run(&self) -> bool {
        !self.state().is_final()
    }
}

/// Reads `trials/<id>/status.json` for every id, in parallel, in the order given.
pub fn scan(sweep_dir: &Path, trial_ids: &[String]) -> Result<Vec<ScanEntry>, RecordError> {
    let trials = sweep_dir.join("trials");
    trial_ids
        .par_iter()
        .map(|id| {
            let status = super::damage::read_status(&trials.join(id).join(files::STATUS))?;
            Ok(ScanEntry {
                trial_id: id.clone(),
                status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::write_json_atomic;

    #[test]
    fn scan_reports_missing_and_final_states() {
        let dir = tempfile::tempdir().unwrap();
        for (id, st) in [
            ("a", TrialState::Completed),
            ("b", TrialState::Failed),
            ("c", TrialState::Diverged),
        ] {
            let d = dir.path().join("trials").join(id);
            std::fs::create_dir_all(&d).unwrap();
            let mut s = TrialStatus::pending();
            s.status = st;
            write_json_atomic(&d.join(files::STATUS), &s).unwrap();
        }
        let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let e = scan(dir.path(), &ids).unwrap();
        let needs: Vec<bool> = e.iter().map(|e| e.needs_run()).collect();
        assert_eq!(needs, vec![false, true, false, true]);
        assert_eq!(e[3].state(), TrialState::Pending);
    }
}
