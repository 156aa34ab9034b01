//! The `ABLATE_TEST_*` hooks are in the binary the tests build (the `test-hooks` feature) and
//! nowhere else: a release build has none of their names.

use std::path::PathBuf;

/// The hook names, as `src/commands/test_hooks.rs` reads them.
const HOOKS: [&str; 3] = [
    "ABLATE_TEST_PANIC_AT_STEP",
    "ABLATE_TEST_KILL_AT_STEP",
    "ABLATE_TEST_DIVERGE",
];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_test_build_has_the_hooks() {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_ablate")).unwrap();
    for hook in HOOKS {
        assert!(
            contains(&bytes, hook),
            "{hook} missing from the test binary"
        );
    }
}

#[test]
#[ignore = "needs target/release/ablate (cargo build --release)"]
fn release_has_no_test_hooks() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let exe = target.join("release/ablate");
    let bytes = std::fs::read(&exe)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo build --release` first)", exe.display()));
    for hook in HOOKS {
        assert!(!contains(&bytes, hook), "{hook} is in {}", exe.display());
    }
}
