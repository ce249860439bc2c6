#!/usr/bin/env bash
# Makes a self-contained folder of binaries for the GPU machine, which has the CUDA toolkit
# (/usr/local/cuda/lib64: cudart, cuBLAS) but no Qt, sentencepiece or other Debian libraries.
#
#   bench/gpu_bundle.sh [-o DIR] [-m MODEL]... BINARY...
#
# Copies each BINARY, every shared library they need that is not part of the base system or the
# CUDA driver/toolkit (lib/), each MODEL folder (a name under ../shared/models, or a path; models/)
# run.sh, which runs a command with the right library path, and gpu_run.sh (the one command for the
# GPU machine, with decode_table.py and ../shared/peers/torch_compile_decode.py) into one xz tarball
# DIR/bundle.txz (DIR default .dev/gpu, git-ignored; the tarball keeps the carried tree well under
# the device tool's 64 MiB). On the device, with carry [".dev/gpu"]:
#   cd .dev/gpu && tar xJf bundle.txz && ./run.sh ./test_x      (or ./gpu_run.sh for everything)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.dev/gpu"
models=()
while getopts "o:m:" opt; do
    case $opt in
        o) out="$OPTARG" ;;
        m) models+=("$OPTARG") ;;
        *) echo "usage: $0 [-o DIR] [-m MODEL]... BINARY..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-o DIR] [-m MODEL]... BINARY..." >&2; exit 2; }

final="$out"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/lib"
# The base system (glibc, libstdc++, libgcc) and the CUDA driver / big toolkit libraries are there.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+|libgcc_s|libcuda\.so|libcublas|libcublasLt|libnvidia)'
for bin in "$@"; do
    [ -f "$bin" ] && [ -x "$bin" ] || { echo "not an executable file: $bin" >&2; exit 1; }
    cp -f "$bin" "$out/"
    strip --strip-debug "$out/$(basename "$bin")"  # host debug info only; keeps the tarball small
    ldd "$bin" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
        if [[ "$name" =~ $skip ]]; then continue; fi
        [ -e "$out/lib/$name" ] || cp -L "$path" "$out/lib/$name"
    done
done
# The CUDA backend module (liblmw_cuda.so), which the programs dlopen() and ldd does not list: from
# the first binary's build tree (<build>/lib/lmworkbench) to lib/lmworkbench, named by run.sh.
module="$(cd "$(dirname "$1")/.." && pwd)/lib/lmworkbench/liblmw_cuda.so"
if [ -f "$module" ]; then
    mkdir -p "$out/lib/lmworkbench"
    cp -f "$module" "$out/lib/lmworkbench/"
    strip --strip-debug "$out/lib/lmworkbench/liblmw_cuda.so"
    ldd "$module" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
        if [[ "$name" =~ $skip ]]; then continue; fi
        [ -e "$out/lib/$name" ] || cp -L "$path" "$out/lib/$name"
    done
fi
for m in "${models[@]}"; do
    src="$m"
    [ -d "$src" ] || src="$root/../shared/models/$m"
    [ -d "$src" ] || { echo "no model folder: $m" >&2; exit 1; }
    mkdir -p "$out/models"
    cp -rf "$src" "$out/models/"
done
# The one command for the GPU machine (gpu_run.sh), its summaries and the PyTorch peer it runs.
cp -f "$root/bench/gpu_run.sh" "$root/bench/decode_table.py" "$root/bench/trace_summary.py" "$out/"
peer="$root/../shared/peers/torch_compile_decode.py"
if [ -f "$peer" ]; then cp -f "$peer" "$out/"; else echo "warning: no $peer; gpu_run.sh will have no peer" >&2; fi
cat > "$out/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs a bundled binary with the bundled libraries first, then the machine's CUDA toolkit.
here="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -f "$here/lib/lmworkbench/liblmw_cuda.so" ] && export LMW_CUDA_MODULE="$here/lib/lmworkbench/liblmw_cuda.so"
export QT_QPA_PLATFORM=offscreen
exec "$@"
RUN
chmod +x "$out/run.sh"
mkdir -p "$final"
rm -f "$final/bundle.tgz" "$final/bundle.txz"
XZ_OPT="-6 -T2" tar cJf "$final/bundle.txz" -C "$out" .
du -sh "$out" "$final/bundle.txz"
