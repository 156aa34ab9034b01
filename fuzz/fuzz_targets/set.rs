//! `--set KEY=VALUE` overrides: each input line is one argument; the ones that parse are applied
//! together to a small experiment. Any text gives overrides and an experiment, or errors.
#![no_main]

use std::path::Path;

use ablate_fuzz::config::{Experiment, Override};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "name = \"fuzz\"\nseeds = [0, 1]\n[train]\nepochs = 2\n\
                    [[grid]]\n\"model.attention\" = [\"none\", \"se\"]\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let overrides: Vec<Override> = text
        .split('\n')
        .take(16)
        .filter_map(|arg| arg.parse::<Override>().ok())
        .collect();
    for o in &overrides {
        assert!(!o.key.is_empty());
    }
    if let Ok(e) = Experiment::parse(Path::new("base.toml"), BASE, &overrides) {
        let _ = e.trials();
    }
});
