#!/usr/bin/env bash
# The cargo-fuzz targets of fuzz/ (docs/reliability.md#fuzzing).
#   scripts/fuzz.sh smoke            each target for 50 s (CI)
#   scripts/fuzz.sh long [MINUTES]   each target for MINUTES (default 10), one after the other
#   scripts/fuzz.sh check            exit 0 when cargo-fuzz and a toolchain it can use are here
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain; without one, stable
# with RUSTC_BOOTSTRAP=1 is tried. New inputs go to fuzz/corpus/<target>/ (ignored by git), the
# seeds stay in fuzz/seeds/<target>/ (and experiments/ for the experiment parser); a crash is
# saved in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
mode=${1:-smoke}
targets=(experiment set trial_file weights checkpoint)

# A toolchain cargo-fuzz can drive: nightly if installed, else stable with RUSTC_BOOTSTRAP=1.
if cargo +nightly --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
    toolchain="nightly ($(rustc +nightly --version))"
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
    toolchain="stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
    exit 2
fi
if [ "$mode" = check ]; then
    echo "fuzz: cargo-fuzz $("${cargo[@]}" fuzz --version | awk '{print $2}') on $toolchain"
    exit 0
fi
case "$mode" in
    smoke) seconds=50 ;;
    long) seconds=$(( ${2:-10} * 60 )) ;;
    *) echo "usage: $0 smoke|long [MINUTES]|check" >&2; exit 2 ;;
esac
echo "fuzz: $toolchain, ${seconds}s per target"
# Sanitizer: address (the default) finds memory errors in unsafe code (candle's loaders).
"${cargo[@]}" fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "fuzz: $t"
    # -jobs=1: one process, so the figures of the long runs are per core; rss_limit: 2 GB.
    seeds=("seeds/$t")
    # The shipped experiments seed the experiment parser (not copied: read where they are).
    [ "$t" = experiment ] && seeds+=(../experiments)
    "${cargo[@]}" fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        2>&1 | tee "corpus/$t.log" | grep -E '^(#[0-9]+ *DONE|stat::|==[0-9]+==|SUMMARY|Done)' || true
    if [ "${PIPESTATUS[0]}" != 0 ]; then
        echo "fuzz: $t failed; see fuzz/corpus/$t.log and fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: all targets clean"
