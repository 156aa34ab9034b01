# `just` with no recipe lists the recipes.
default:
    @just --list

# Run a sweep (e.g. `just sweep experiments/se_ablation.toml`), then write its report.
sweep FILE *ARGS:
    cargo run --release --bin ablate -- sweep {{FILE}} {{ARGS}}

# Write (or rewrite) the report of a finished or partial sweep, e.g. `just report results/se_ablation`.
report DIR *ARGS:
    cargo run --release --bin ablate -- report {{DIR}} {{ARGS}}

# Plan of a sweep: trial ids, variants, seeds and what is already done; runs nothing.
plan FILE *ARGS:
    cargo run --release --bin ablate -- sweep {{FILE}} --dry-run {{ARGS}}

# The offline smoke sweep on synthetic data (seconds).
smoke:
    cargo run --release --bin ablate -- sweep experiments/smoke.toml

# The test suite, as CI runs it.
test:
    bash .ci/run

# Criterion benchmarks of every crate (data pipeline, training step, config expansion, report).
bench *ARGS:
    cargo bench --workspace {{ARGS}}

# Our training/inference throughput against PyTorch's, side by side (needs a PyTorch virtualenv).
bench-vs-torch:
    bash scripts/bench-vs-torch.sh

# Every model of the zoo against PyTorch: the seed CNN with each attention module at batch 64,
# then ResNet-20 plain and SE at batch 128 (docs/performance.md, issue 17's goal).
bench-vs-torch-zoo:
    MODELS='attention=none;attention=se,reduction=16;attention=eca;attention=spatial;attention=cbam' bash scripts/bench-vs-torch.sh
    BATCH=128 STEPS=15 MODELS='arch=resnet,depth=20;arch=resnet,depth=20,attention=se;arch=resnet,depth=20,attention=eca' bash scripts/bench-vs-torch.sh

# The CUDA binary, target/cuda/release/ablate, for compute capability CAP (90: H100/H200, 80: A100),
# without a GPU or a CUDA toolkit: installs CUDA 13.0 compiler wheels under ~/.cache/ablate/cuda (docs/gpu.md).
build-cuda CAP="90":
    bash scripts/build-cuda.sh {{CAP}}

# Format every crate.
fmt:
    cargo fmt --all

# Formatting check and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Paired parity with PyTorch (docs/parity.md): our sweep, the reference's twin runs, the comparison (PYTHON: a python with torch).
parity-paired PYTHON="python3":
    cargo run --release --bin ablate -- sweep experiments/parity_paired.toml
    mkdir -p results/parity_paired/torch
    for r in 0 16; do for s in 0 1; do {{PYTHON}} scripts/parity-paired.py run --data data/parity --reduction $r --seed $s --threads 2 --out results/parity_paired/torch/r${r}_s${s}.jsonl; done; done
    {{PYTHON}} scripts/parity-paired.py compare --sweep results/parity_paired --torch results/parity_paired/torch

# The fault soak test, long run: 60 random kills (SIGKILL/SIGTERM/SIGINT) of a 20-trial sweep, then bit-exact comparison (docs/reliability.md).
soak SEED="":
    ABLATE_SOAK_SCALE=full ABLATE_SOAK_KILLS=60 ABLATE_SOAK_SEED={{SEED}} cargo test -p ablate-runner --test sweep_soak -- --nocapture

# Every fuzz target for 50 seconds (needs cargo-fuzz and a nightly toolchain; CI runs it when it can).
fuzz-smoke:
    bash scripts/fuzz.sh smoke

# Every fuzz target for MINUTES minutes, one after the other (the figures of docs/reliability.md).
fuzz-long MINUTES="10":
    bash scripts/fuzz.sh long {{MINUTES}}

# Rewrite the golden fixtures from PyTorch (crates/model/tests/fixtures, docs/parity.md; PYTHON: a python with torch).
golden PYTHON="python3":
    {{PYTHON}} scripts/golden.py write
