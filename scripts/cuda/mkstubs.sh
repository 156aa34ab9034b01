#!/bin/sh
# Link-time stand-ins for the NVIDIA libraries the `cuda` build links against.
#
#   scripts/cuda/mkstubs.sh OUTDIR
#
# Writes OUTDIR/libcuda.so (+ libcuda.so.1), libcublas.so (+ .so.13), libcublasLt.so (+ .so.13),
# libcurand.so (+ .so.10) and libnvrtc.so (+ .so.13): small shared libraries that export every
# symbol cudarc declares (the lists sym_*.txt next to this script) with the real libraries'
# sonames and symbol versions, so the linker resolves them and the binary records the real
# names (DT_NEEDED libcuda.so.1, libcublas.so.13, ...). Every function returns an error code.
#
# They exist only so that `scripts/build-cuda.sh` can link on a machine without the NVIDIA
# driver or the 570 MB cuBLAS wheels. They are NEVER shipped and NEVER put on a run-time
# library path: a CUDA binary run against them would find no GPU.
#
# The symbol lists were taken from cudarc 0.19.10 (`nm -u` of its compiled bindings, one name
# a line). If the cudarc version in Cargo.lock changes, regenerate them: build once, then list
# the undefined `cu*`/`cublas*`/`curand*`/`nvrtc*` symbols the linker reports missing.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}

# mk NAME SONAME VERSION_NODE SYMBOL_LIST
mk() {
    c="$out/$1.c"
    {
        echo 'static const char *m = "CUDA_ERROR_STUB_LIBRARY: link-time stand-in, no NVIDIA driver";'
        if [ "$1" = libcuda ]; then
            echo 'int cuGetErrorString(int e, const char **s) { (void)e; if (s) *s = m; return 0; }'
            echo 'int cuGetErrorName(int e, const char **s) { (void)e; if (s) *s = "CUDA_ERROR_STUB_LIBRARY"; return 0; }'
        fi
        # 34 = CUDA_ERROR_STUB_LIBRARY.
        grep -v -E '^cuGetError(String|Name)$' "$here/$4" | sed 's/.*/int &(void) { return 34; }/'
    } > "$c"
    vs=""
    if [ -n "$3" ]; then
        printf '%s { global: *; };\n' "$3" > "$out/$1.map"
        vs="-Wl,--version-script=$out/$1.map"
    fi
    # shellcheck disable=SC2086 # $vs is empty or one word
    "$cc" -shared -fPIC -O1 -w -Wl,-soname,"$2" $vs "$c" -o "$out/$1.so"
    ln -sf "$1.so" "$out/$2"
}

mk libcuda     libcuda.so.1      ""                 sym_cuda.txt
mk libcublas   libcublas.so.13   libcublas.so.13    sym_cublas.txt
mk libcublasLt libcublasLt.so.13 libcublasLt.so.13  sym_cublasLt.txt
mk libcurand   libcurand.so.10   libcurand.so.10    sym_curand.txt
mk libnvrtc    libnvrtc.so.13    libnvrtc.so.13     sym_nvrtc.txt
rm -f "$out"/*.c "$out"/*.map
