#!/usr/bin/env bash
# Our training/inference throughput against PyTorch's on this machine, side by side.
#
#   scripts/bench-vs-torch.sh            (or: just bench-vs-torch)
#
# Runs `ablate bench --json` (release build) and `scripts/torch_bench.py` (eager PyTorch, the
# reference models of scripts/golden.py) alternately, ROUNDS times (default 3), each printing
# one JSON line per model and batch size with train_img_s and infer_img_s; then prints a table
# of the medians and one line per model:
#
#   ratio baseline train=1.07 infer=1.31
#
# (ours / PyTorch; above 1 means we are faster).
#
# Environment:
#   TORCH_PYTHON  python interpreter with torch, safetensors and numpy (default: /work/venv-torch
#                 or ./.venv-torch if present, else python3 if it imports torch)
#   ROUNDS        alternating rounds (default 3)
#   BATCH         batch size (default 64)
#   STEPS         timed steps per measurement (default 30), WARMUP (default 5)
#   MODELS        `;`-separated model specs (default: the seed CNN and SE r=16, named
#                 baseline and se_r16), e.g. MODELS='attention=eca;attention=cbam'
#   DEVICE        cpu (default) or cuda:N (PyTorch then uses cuda)
#   RAYON_NUM_THREADS / torch --threads: both sides use all cores by default.
#
# PyTorch is not a project dependency: install it once per machine, outside the repository,
# never in CI (several GB):
#   python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch safetensors numpy
#   TORCH_PYTHON=~/venv-torch/bin/python scripts/bench-vs-torch.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-64}"
STEPS="${STEPS:-30}"
WARMUP="${WARMUP:-5}"
DEVICE="${DEVICE:-cpu}"
model_args=()
if [[ -n "${MODELS:-}" ]]; then
    IFS=';' read -ra specs <<<"$MODELS"
    for m in "${specs[@]}"; do model_args+=(--model "$m"); done
fi
torch_device=cpu
[[ $DEVICE == cpu ]] || torch_device=cuda

install_hint() {
    cat >&2 <<EOF
bench-vs-torch: $1
PyTorch is needed for the comparison (not for the project). Install it once per machine,
outside the repository (several GB; never in CI):
    python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch safetensors numpy
then run:
    TORCH_PYTHON=~/venv-torch/bin/python scripts/bench-vs-torch.sh
EOF
    exit 2
}

py="${TORCH_PYTHON:-}"
if [[ -z "$py" ]]; then
    for cand in /work/venv-torch/bin/python "$root/.venv-torch/bin/python" python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' >/dev/null 2>&1; then
            py="$cand"
            break
        fi
    done
    [[ -n "$py" ]] || install_hint "no python with torch found (set TORCH_PYTHON)"
elif ! "$py" -c 'import torch' >/dev/null 2>&1; then
    install_hint "TORCH_PYTHON=$py cannot import torch"
fi

echo "building ablate (release)..." >&2
cargo build --release -q --bin ablate
ours_bin="${CARGO_TARGET_DIR:-$root/target}/release/ablate"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "torch: $("$py" -c 'import torch; print(torch.__version__, "threads", torch.get_num_threads())')" >&2
for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r/$ROUNDS: ours" >&2
    "$ours_bin" bench --device "$DEVICE" --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" \
        --json "${model_args[@]}" | sed "s/^/ours /" >>"$tmp/results"
    echo "round $r/$ROUNDS: torch" >&2
    "$py" scripts/torch_bench.py --device "$torch_device" --batch "$BATCH" --steps "$STEPS" \
        --warmup "$WARMUP" "${model_args[@]}" | sed "s/^/torch /" >>"$tmp/results"
done

python3 - "$tmp/results" "$BATCH" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, _, js = line.partition(" ")
    d = json.loads(js)
    rows.setdefault((d["model"], side), []).append(d)
print(f"batch {sys.argv[2]}, medians of {max(len(v) for v in rows.values())} alternating rounds (images/s)")
print(f"| model | side | train | infer | train runs | infer runs |")
print(f"| --- | --- | --- | --- | --- | --- |")
med = {}
for (model, side), ds in sorted(rows.items()):
    tr = [d["train_img_s"] for d in ds]
    inf = [d["infer_img_s"] for d in ds]
    med[(model, side)] = (statistics.median(tr), statistics.median(inf))
    runs = lambda v: " ".join(f"{x:.0f}" for x in v)
    print(f"| {model} | {side} | {med[(model, side)][0]:.0f} | {med[(model, side)][1]:.0f} | {runs(tr)} | {runs(inf)} |")
for model in sorted({m for m, _ in med}):
    if (model, "ours") in med and (model, "torch") in med:
        o, t = med[(model, "ours")], med[(model, "torch")]
        print(f"ratio {model} train={o[0] / t[0]:.2f} infer={o[1] / t[1]:.2f}")
EOF
