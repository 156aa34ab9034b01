//! A checkpoint's `state.json` read back (`checkpoint::recover`): any bytes give the state, no
//! checkpoint (a damaged file is set aside) or an error; never a panic.
#![no_main]

use std::sync::OnceLock;

use ablate_model::train::checkpoint;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary folder"))
}

fuzz_target!(|data: &[u8]| {
    let d = dir().path();
    let _ = std::fs::remove_dir_all(d.join(checkpoint::DAMAGED_DIR));
    std::fs::write(d.join(checkpoint::STATE_FILE), data).expect("write state.json");
    let _ = checkpoint::recover(d);
    let _ = std::fs::remove_file(d.join(checkpoint::STATE_FILE));
});
