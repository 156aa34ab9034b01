#!/usr/bin/env bash
# Builds `ablate` with candle's CUDA backend (`--features cuda`) on a machine without a GPU and
# without a system CUDA toolkit (`just build-cuda [CAP]`; docs/gpu.md).
#
#   scripts/build-cuda.sh [CAP]
#
# CAP: the CUDA compute capability the kernels are compiled for, e.g. 90 (H100/H200, the
# default), 80 (A100), 86 (RTX 30xx, A40), 89 (L4, L40, RTX 40xx), 100 (B200), 120 (RTX 50xx).
#
# What it does:
# 1. Installs, when missing, NVIDIA's CUDA 13.0 compiler and runtime wheels from PyPI (pinned
#    below, about 105 MB download, 300 MB installed) into a virtualenv OUTSIDE the repository:
#    $ABLATE_CUDA_ROOT/venv, default ~/.cache/ablate/cuda/venv. 13.0, not newer: candle loads
#    its kernels as PTX, and a driver reads PTX only of its own CUDA version or older (the
#    580 driver of the GPU machines is CUDA 13.0).
# 2. Makes link-time stand-ins for libcuda, libcublas, libcublasLt, libcurand and libnvrtc
#    (scripts/cuda/mkstubs.sh) in $ABLATE_CUDA_ROOT/home/lib/stubs, and a CUDA_HOME there whose
#    lib/ links the wheel's real libcudart. The stand-ins only satisfy the linker: they are
#    never on a run-time library path and never shipped.
# 3. Builds the release binary in its own target folder (target/cuda: the CPU build's
#    artifacts are untouched) without debug information, stripped, and prints its path, size
#    and the libraries it needs at run time.
#
# Environment: ABLATE_CUDA_ROOT (where step 1 and 2 put things), PYTHON (the python3 that
# creates the virtualenv), CARGO_BUILD_JOBS (also caps nvcc's parallel jobs).
# Cost on 2 cores: about 15-25 minutes cold (nvcc compiles all of candle's kernels), a few
# minutes after a change in our crates.
set -euo pipefail

cap=${1:-90}
if ! [[ $cap =~ ^[0-9]{2,3}a?$ ]]; then
    echo "build-cuda: CAP must be a compute capability such as 90 (H100/H200) or 80 (A100), got '$cap'" >&2
    exit 2
fi

for tool in cc xz readelf; do
    command -v "$tool" > /dev/null || {
        echo "build-cuda: needs \`$tool\` (Debian: apt-get install build-essential xz-utils binutils)" >&2
        exit 1
    }
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${ABLATE_CUDA_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/ablate/cuda}
venv=$root/venv
home=$root/home
target=$repo/target/cuda
jobs=${CARGO_BUILD_JOBS:-$(nproc)}

# The CUDA 13.0 wheels: compiler (nvcc, ptxas, cicc via nvvm), front end (crt), headers (cccl)
# and the runtime library the binary links.
wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-cccl==13.0.85
)

# 1. The compiler wheels.
marker=$venv/ablate-cuda-wheels.txt
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$marker" 2>/dev/null)" != "${wheels[*]}" ]; then
    echo "build-cuda: installing the CUDA 13.0 compiler wheels into $venv"
    mkdir -p "$root"
    [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv" || {
        echo "build-cuda: cannot create a virtualenv with ${PYTHON:-python3} (Debian: apt-get install python3-venv)" >&2
        exit 1
    }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${wheels[@]}"
    echo "${wheels[*]}" > "$marker"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cu13=$site/nvidia/cu13
nvcc=$cu13/bin/nvcc
if ! "$nvcc" --version | grep -q 'release 13\.0'; then
    echo "build-cuda: $nvcc is not CUDA 13.0; remove $venv and rerun" >&2
    exit 1
fi

# 2. CUDA_HOME: the real runtime library and headers, and the link-time stand-ins.
mkdir -p "$home/lib"
ln -sfn "$cu13/include" "$home/include"
ln -sf "$cu13/lib/libcudart.so.13" "$home/lib/libcudart.so"
stubs_sum=$(cat "$repo"/scripts/cuda/* | sha256sum | cut -d' ' -f1)
if [ "$(cat "$home/lib/stubs/source.sha256" 2>/dev/null)" != "$stubs_sum" ]; then
    rm -rf "$home/lib/stubs"
    sh "$repo/scripts/cuda/mkstubs.sh" "$home/lib/stubs"
    echo "$stubs_sum" > "$home/lib/stubs/source.sha256"
fi

# 3. The build. cudarc links what it finds under CUDA_HOME (lib/, lib/stubs/) and reads the
# CUDA version from `nvcc --version`; candle's kernels are compiled by cudaforge with $NVCC
# for $CUDA_COMPUTE_CAP. Other CUDA path variables would add other search folders: unset.
unset CUDA_PATH CUDA_ROOT CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB CUDARC_CUDA_VERSION
export CUDA_HOME=$home
export NVCC=$nvcc
export PATH=$cu13/bin:$PATH
export CUDA_COMPUTE_CAP=$cap
export CUDAFORGE_THREADS=$jobs
export CARGO_TARGET_DIR=$target
# No debug information, symbols stripped: the binary travels to the GPU machines.
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=symbols
echo "build-cuda: compute capability $cap, CUDA_HOME=$home, target $target"
cd "$repo"
cargo build --release --locked -p ablate-runner --bin ablate --features cuda

bin=$target/release/ablate
echo "$cap" > "$target/release/ablate.compute-cap"
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
if readelf -d "$bin" | grep -E '\((RPATH|RUNPATH)\)' | grep -q "$root"; then
    echo "build-cuda: $bin has a run-time path into $root (the stand-ins); refusing it" >&2
    exit 1
fi
bytes=$(stat -c %s "$bin")
echo "build-cuda: built $bin for compute capability $cap"
echo "build-cuda: size $((bytes / 1048576)) MiB ($bytes bytes)"
echo "build-cuda: needs at run time: $needed"
echo "build-cuda: run it where the NVIDIA driver (libcuda.so.1) and CUDA 13 libraries are found (docs/gpu.md)"
# The binary compressed, for machines that receive files under a size limit (the lent GPU
# machines take 64 MiB in all); scripts/gpu-check.sh unpacks it.
xz -T0 -6 -k -f "$bin"
xz_bytes=$(stat -c %s "$bin.xz")
echo "build-cuda: compressed $bin.xz: $((xz_bytes / 1048576)) MiB ($xz_bytes bytes)"
if [ "$xz_bytes" -gt $((48 * 1048576)) ]; then
    echo "build-cuda: warning: $bin.xz is over 48 MiB; with its data files it may not fit the 64 MiB sent to a GPU machine" >&2
fi
