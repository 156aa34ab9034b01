#!/usr/bin/env bash
# The GPU check: one script for a GPU machine that has the prebuilt CUDA binary and PyTorch
# with CUDA, but no Rust toolchain and no network (docs/gpu.md). In order:
#
#   1. what the binary sees (`ablate devices`, nvidia-smi);
#   2. every golden fixture of the repo on the device (`ablate golden`), twice: within
#      tolerance, and whether the two runs agree bit for bit;
#   3. training and inference images/s, ours (`ablate bench`) beside PyTorch eager
#      (`scripts/torch_bench.py`) on the same device: the seed CNN and SE r=16 at batch 64
#      and 512, then the rest of the zoo (ECA, spatial attention, CBAM, ResNet-20 plain and
#      SE) at batch 128;
#   4. a one-epoch sweep on the CIFAR-10 copy, two trials sharing the device
#      (`experiments/gpu_check.toml`, --jobs-per-device 2);
#
# then prints one table and ends (about 2-5 minutes on an H200, well within 8).
#
#   scripts/gpu-check.sh [--cpu] [--bin ABLATE] [--data CIFAR10] [--out DIR] [--python PY]
#
# --cpu     the same steps on the CPU, with the device-generic kernels (what a GPU runs) and
#           small sizes; the PyTorch column when `--python` (default python3) imports torch.
#           CI runs this mode, so the script cannot rot.
# --bin     the ablate binary (default: target/cuda/release/ablate on a GPU, or its .xz when
#           only that is there; else target/release/ablate or target/debug/ablate; or
#           $ABLATE_BIN). A path ending in .xz is unpacked to a temporary file first.
# --data    CIFAR-10 as an image-folder .tar.gz (default data/cifar10-jpeg.tar.gz, else
#           ../shared/data/cifar10-jpeg.tar.gz; with --cpu and neither: synthetic data).
# --out     where the logs and results go (default: a new temporary folder, printed).
# --python  a python with torch for the PyTorch column (default $TORCH_PYTHON or python3).
#
# The CUDA binary needs the driver's libcuda and CUDA 13's cuBLAS/cudart/curand at run time;
# with PyTorch cu130 installed by pip, the script puts its nvidia/cu13/lib on LD_LIBRARY_PATH
# when ablate cannot start without it (docs/gpu.md).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mode=gpu
bin="${ABLATE_BIN:-}"
data=""
out=""
py="${TORCH_PYTHON:-python3}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cpu) mode=cpu ;;
        --bin) bin="$2"; shift ;;
        --data) data="$2"; shift ;;
        --out) out="$2"; shift ;;
        --python) py="$2"; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $mode == gpu ]]; then
    device=cuda:0; torch_device=cuda; kernels=fast
    batches=64,512; zoo_batches=128; steps=30; warmup=5
    [[ -n $bin ]] || bin=target/cuda/release/ablate
else
    device=cpu; torch_device=cpu; kernels=generic
    batches=16,64; zoo_batches=16; steps=2; warmup=1
    if [[ -z $bin ]]; then
        for cand in target/release/ablate target/debug/ablate; do
            [[ -x $cand ]] && { bin=$cand; break; }
        done
    fi
fi
# The compressed binary (`scripts/build-cuda.sh` writes ABLATE.xz beside it: a third of the
# size, so that it travels to a GPU machine) is unpacked to a temporary file first.
if [[ -n $bin && ! -x $bin && -f $bin.xz ]]; then
    bin=$bin.xz
fi
if [[ $bin == *.xz ]]; then
    unpacked=$(mktemp -d)/ablate
    xz -dc "$bin" > "$unpacked" && chmod +x "$unpacked" \
        || { echo "gpu-check: cannot unpack $bin" >&2; exit 2; }
    echo "gpu-check: unpacked $bin to $unpacked"
    bin=$unpacked
fi
[[ -n $bin && -x $bin ]] || { echo "gpu-check: no ablate binary at '${bin:-?}' (--bin)" >&2; exit 2; }
if [[ -z $data ]]; then
    for cand in data/cifar10-jpeg.tar.gz ../shared/data/cifar10-jpeg.tar.gz; do
        [[ -f $cand ]] && { data=$cand; break; }
    done
fi
[[ -n $out ]] || out="$(mktemp -d /tmp/gpu-check.XXXXXX)"
mkdir -p "$out"
echo "gpu-check: mode $mode, binary $bin, device $device, logs in $out" >&2
start=$(date +%s)

torch_ok=0
if "$py" -c 'import torch' >/dev/null 2>&1; then
    if [[ $mode == cpu ]] || "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        torch_ok=1
    fi
fi
# The CUDA binary's libraries, from PyTorch's pip wheels, when it cannot start without them.
if ! "$bin" --version >/dev/null 2>&1 && [[ $torch_ok == 1 ]]; then
    lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia", "cu13", "lib"))')"
    export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "gpu-check: LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
fi
"$bin" --version >/dev/null || { echo "gpu-check: $bin does not start (docs/gpu.md: run-time libraries)" >&2; exit 2; }

status=0
step() { echo "gpu-check: $* ($(( $(date +%s) - start )) s)" >&2; }

step "devices"
{ "$bin" devices 2>&1 || true; command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 || true; } > "$out/devices.txt"

step "golden fixtures on $device, twice"
fixtures=(crates/model/tests/fixtures/golden_*.safetensors)
for run in 1 2; do
    "$bin" golden "${fixtures[@]}" --device "$device" --kernels "$kernels" --json \
        > "$out/golden$run.jsonl" 2> "$out/golden$run.err" || status=1
done

# The rest of the zoo, one --model each (the spec texts both benches take).
zoo=(attention=eca attention=spatial attention=cbam arch=resnet,depth=20
     arch=resnet,depth=20,attention=se)
zoo_args=()
for m in "${zoo[@]}"; do zoo_args+=(--model "$m"); done

step "throughput, ours"
{
    "$bin" bench --device "$device" --kernels "$kernels" --batch "$batches" --steps "$steps" \
        --warmup "$warmup" --json || status=1
    "$bin" bench --device "$device" --kernels "$kernels" --batch "$zoo_batches" --steps "$steps" \
        --warmup "$warmup" --json "${zoo_args[@]}" || status=1
} > "$out/bench_ours.jsonl" 2> "$out/bench_ours.err"
if [[ $torch_ok == 1 ]]; then
    step "throughput, PyTorch ($py)"
    {
        "$py" scripts/torch_bench.py --device "$torch_device" --batch "$batches" --steps "$steps" \
            --warmup "$warmup" || true
        "$py" scripts/torch_bench.py --device "$torch_device" --batch "$zoo_batches" \
            --steps "$steps" --warmup "$warmup" "${zoo_args[@]}" || true
    } > "$out/bench_torch.jsonl" 2> "$out/bench_torch.err"
else
    if [[ $mode == gpu ]]; then
        echo "no PyTorch: $py cannot import torch with CUDA" > "$out/bench_torch.err"
    else
        echo "no PyTorch: $py cannot import torch" > "$out/bench_torch.err"
    fi
fi

step "one-epoch sweep, two trials on $device"
sets=()
if [[ -n $data ]]; then
    sets+=(--set "data.path=$data")
    [[ $mode == cpu ]] && sets+=(--set data.train_limit=512 --set data.test_limit=256)
else
    sets+=(--set data.dataset=synthetic --set data.synthetic_train=512 --set data.synthetic_test=256)
fi
t0=$(date +%s)
ABLATE_KERNELS=$kernels "$bin" sweep experiments/gpu_check.toml --devices "$device" --jobs-per-device 2 \
    --out "$out/results" "${sets[@]}" > "$out/sweep.log" 2>&1 || status=1
echo $(( $(date +%s) - t0 )) > "$out/sweep.seconds"

step "summary"
python3 - "$out" "$mode" "$device" "${data:-synthetic}" <<'PYEOF' || status=1
import glob, json, os, sys
out, mode, device, data = sys.argv[1:5]
def jsonl(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    rows = []
    for line in open(p):
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows
print(f"## gpu-check ({mode}, {device})\n")
print("### devices\n")
print("```\n" + open(os.path.join(out, "devices.txt")).read().strip() + "\n```\n")
g1, g2 = jsonl("golden1.jsonl"), jsonl("golden2.jsonl")
print("### golden fixtures\n")
print("| fixture | comparisons | failed | worst (error / tolerance) | same in both runs |")
print("| --- | ---: | ---: | --- | --- |")
for a in g1:
    b = next((x for x in g2 if x["file"] == a["file"]), None)
    w = a["worst"][0] if a["worst"] else {}
    same = "yes" if a == b else "NO"
    print(f"| {os.path.basename(a['file'])} | {a['comparisons']} | {a['failed']} | "
          f"{w.get('key', '')} {w.get('error', 0):.2e} / {w.get('tolerance', 0):.0e} | {same} |")
if not g1:
    print("| (no result: see golden1.err) | | | | |")
ours, torch = jsonl("bench_ours.jsonl"), jsonl("bench_torch.jsonl")
print("\n### throughput (images/s)\n")
print("| model | batch | ours train | PyTorch train | ratio | ours infer | PyTorch infer | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for o in ours:
    t = next((x for x in torch if x["model"] == o["model"] and x["batch"] == o["batch"]), None)
    tt = f"{t['train_img_s']:.0f}" if t else "-"
    ti = f"{t['infer_img_s']:.0f}" if t else "-"
    rt = f"{o['train_img_s'] / t['train_img_s']:.2f}" if t else "-"
    ri = f"{o['infer_img_s'] / t['infer_img_s']:.2f}" if t else "-"
    print(f"| {o['model']} | {o['batch']} | {o['train_img_s']:.0f} | {tt} | {rt} | "
          f"{o['infer_img_s']:.0f} | {ti} | {ri} |")
if not torch:
    err = open(os.path.join(out, "bench_torch.err")).read().strip().splitlines()
    print(f"\nPyTorch column: {err[-1] if err else 'no output'}")
print(f"\n### one-epoch sweep ({data})\n")
print("| trial | variant | status | test acc | images/s |")
print("| --- | --- | --- | ---: | ---: |")
ok = True
for path in sorted(glob.glob(os.path.join(out, "results", "*", "trials", "*", "status.json"))):
    d = os.path.dirname(path)
    st = json.load(open(path))
    fin = os.path.join(d, "final.json")
    acc = ips = "-"
    if os.path.exists(fin):
        f = json.load(open(fin))
        acc = f"{100 * f.get('final_test_acc', 0):.2f}%"
    ep = os.path.join(d, "epochs.jsonl")
    if os.path.exists(ep):
        lines = [json.loads(l) for l in open(ep) if l.strip()]
        if lines:
            ips = f"{lines[-1].get('images_per_sec', 0):.0f}"
    ok &= st.get("status") == "completed"
    variant = ""
    for line in open(os.path.join(d, "config.toml")):
        if line.startswith("variant"):
            variant = line.split("=", 1)[1].strip().strip('"')
            break
    print(f"| {os.path.basename(d)} | {variant} | {st.get('status')} | {acc} | {ips} |")
secs = open(os.path.join(out, "sweep.seconds")).read().strip()
print(f"\nsweep wall time {secs} s (two trials sharing {device})")
failed = sum(a["failed"] for a in g1) + sum(a["failed"] for a in g2)
sys.exit(0 if ok and g1 and failed == 0 else 1)
PYEOF
step "done, status $status"
exit $status
