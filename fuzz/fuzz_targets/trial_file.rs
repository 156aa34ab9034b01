//! A trial's `config.toml` as `ablate trial DIR` reads it back: any text gives the trial's
//! configuration or a `ConfigError`.
#![no_main]

use std::path::Path;

use ablate_fuzz::config::{parse_trial_config, raw::RawDoc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let Ok(raw) = RawDoc::parse(Path::new("config.toml"), text) else {
        return;
    };
    if let Ok(t) = parse_trial_config(raw) {
        // What a trial folder is named after: always an id, never a path.
        assert!(ablate_fuzz::config::ids::is_id(t.trial_id.as_str()));
    }
});
