#!/usr/bin/env bash
# Runs on the GPU machine from an unpacked bench/gpu_bundle.sh bundle: the CUDA backend's tests,
# then `lmw bench` on stories260K and a Llama-2-7B-shaped random model, and PyTorch's numbers for
# the same shape in the same run. Output: $OUT (or ./out).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/out}"
mkdir -p "$out"
export LMW_MODELS_DIR="$here/models"
cd "$here"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# A failing test (or a crash) makes the run fail, after the benchmarks still ran for the record.
failed=()
for t in ./*test_*; do
  log="$out/$(basename "$t").log"
  if ./run.sh "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
  grep -E "^(Totals|FAIL|SKIP)" "$log" | sed "s|^|$t: |"
  [ "$rc" -eq 0 ] || { echo "$t: FAILED (exit $rc)"; failed+=("$t"); }
done
./run.sh ./lmw generate models/stories260K --prompt "Once upon a time" --temperature 0 --max-new-tokens 32 --backend cuda --quiet \
  || failed+=("lmw generate")
./run.sh ./lmw bench models/stories260K --backend cuda --synthetic 7b --synthetic-dtype F16 \
    --requests 64 --concurrency 32 --input-len 128 --output-len 128 2>&1 | tee "$out/bench_7b.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("lmw bench")
python3 "$here/torch_reference.py" 2>&1 | grep -v Warning | tee "$out/torch_7b.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
