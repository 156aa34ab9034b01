//! An experiment file through every pass: TOML with positions, validation, grid expansion,
//! trial ids. Any text gives an experiment or a `ConfigError`: never a panic, a hang or
//! unbounded memory (a plan of more than `MAX_TRIALS` trials is refused before expansion).
#![no_main]

use std::path::Path;

use ablate_fuzz::config::{grid::MAX_TRIALS, Experiment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Experiment::parse(Path::new("fuzz.toml"), &text, &[]) {
        Ok(e) => {
            let trials = e.trials();
            assert_eq!(trials.len(), e.trial_count());
            assert!(trials.len() as u64 <= MAX_TRIALS);
            assert!(!e.name().is_empty() && !e.name().contains(['/', '\\', '\0']));
            let _ = e.to_toml_string();
        }
        Err(err) => {
            // Every error renders as one line (the message users read).
            let line = err.to_string();
            assert!(!line.is_empty());
        }
    }
});
