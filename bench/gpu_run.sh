#!/usr/bin/env bash
# The one command for the GPU machine, from an unpacked bench/gpu_bundle.sh bundle (~9 minutes):
# the CUDA backend's tests, `lmw bench` on a Llama-2-7B-shaped random model in F16, BF16 and W4A16
# (batch 1, 4, 16 at context 512; batch 1 at context 8192), the PyTorch peer
# (torch_compile_decode.py) on the same shape and context, and a table of ours vs the peer with
# the issue's targets. Everything is printed as it comes and kept in $OUT (or ./out).
#   ./gpu_run.sh [tests] [ctx512] [ctx8192] [peer] [trace] [serving]   (no argument: the first four; a
#   device call has 10 minutes). trace: the kernel timeline of one replayed batch-1 decode step in F16 and
#   W4A16 (bench/cupti_trace.cpp and trace_summary.py; the bundle must hold libcupti_trace.so). serving
#   (issue 15, ~5 minutes): BF16 and W4A16 under load, 512 requests of 512 in / 256 out at concurrency 256,
#   and the ShareGPT-like workload at concurrency 64 and 256.
set -u
parts="${*:-tests ctx512 ctx8192 peer}"
want() { [[ " $parts " == *" $1 "* ]]; }
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/out}"
mkdir -p "$out"
export LMW_MODELS_DIR="$here/models"
cd "$here"
start=$SECONDS
stamp() { echo "== $* ($((SECONDS - start)) s)"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
lmw=(./run.sh ./lmw)
synth=(models/stories260K --synthetic 7b --synthetic-dtype F16,BF16,W4A16)
# The random 7B models go to /tmp (16-bit ones take ~40 s each): written while the tests run, as
# the writer uses only the CPU and the disk and the tests are not timed.
"${lmw[@]}" bench "${synth[@]}" --prepare-only >"$out/prepare_models.log" 2>&1 &
prepare=$!
# A failing test (or a crash) makes the run fail, after the benchmarks still ran for the record.
failed=()
for t in ./*test_*; do
  want tests || break
  log="$out/$(basename "$t").log"
  if timeout -k 5 300 ./run.sh "$t" >"$log" 2>&1; then rc=0; else rc=$?; fi
  grep -E "^(Totals|FAIL|SKIP)" "$log" | sed "s|^|$t: |"
  [ "$rc" -eq 0 ] || { echo "$t: FAILED (exit $rc)"; failed+=("$t"); }
done
if want tests; then
  "${lmw[@]}" generate models/stories260K --prompt "Once upon a time" --temperature 0 --max-new-tokens 32 --backend cuda \
    --quiet || failed+=("lmw generate")
fi
# The peer first, while the synthetic models are still being written (the writer uses only the CPU and
# the disk). The peer on the same shape (vocab 512, as the synthetic models) and context (512 prompt tokens,
# 128 timed steps). Its int4 (tinygemm) runs in the bf16 process, after the 16-bit batches; most
# of each run is torch.compile's warm-up. It prints one JSON object at the end.
peer() {
  local name=$1 limit=$2
  shift 2
  stamp "peer $name (at most $limit s)"
  env -u OUT timeout -k 10 "$limit" python3 "$here/torch_compile_decode.py" --vocab 512 --prompt 512 --new 128 \
    --batch 1 16 "$@" >"$out/peer_$name.json" 2>"$out/peer_$name.log"
  local rc=$?
  cat "$out/peer_$name.json"
  [ "$rc" -eq 0 ] || { echo "peer $name: exit $rc (124: timed out)"; grep -v Warning "$out/peer_$name.log" | tail -5; }
}
if want peer; then
  peer bf16_int4 230 --dtype bf16
  peer f16 130 --dtype f16 --no-int4
fi
stamp "waiting for the synthetic models"
wait "$prepare" || { echo "writing the synthetic models failed:"; tail -5 "$out/prepare_models.log"; }
if want ctx512; then
  stamp "lmw bench, context 512"
  "${lmw[@]}" bench "${synth[@]}" --backend cuda --context 512 --batch 1,4,16 2>&1 | tee "$out/bench_ctx512.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("lmw bench --context 512")
fi
if want ctx8192; then
  stamp "lmw bench, context 8192"
  "${lmw[@]}" bench "${synth[@]}" --backend cuda --context 8192 --batch 1 2>&1 | tee "$out/bench_ctx8192.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("lmw bench --context 8192")
fi
if want trace; then
  for dt in F16 W4A16; do
    stamp "kernel timeline, $dt batch 1, context 512"
    CUDA_INJECTION64_PATH="$here/libcupti_trace.so" LMW_TRACE_OUT="/tmp/trace_$dt.csv" "${lmw[@]}" bench \
      models/stories260K --synthetic 7b --synthetic-dtype "$dt" --backend cuda --context 512 --batch 1 | grep -E "^  [a-z]"
    python3 "$here/trace_summary.py" "/tmp/trace_$dt.csv" --top 8 | tee "$out/trace_$dt.txt"
  done
fi
if want serving; then
  for dt in BF16 W4A16; do
    serve=("${lmw[@]}" bench models/stories260K --synthetic 7b --synthetic-dtype "$dt" --backend cuda --context 512
           --batch 1 --decode-tokens 16 --max-batch-size 256 --requests 512)
    stamp "serving $dt: 512 in / 256 out, concurrency 256"
    "${serve[@]}" --concurrency 256 --input-len 512 --output-len 256 2>&1 | grep -A6 "^throughput" | tee -a "$out/serving.txt"
    for c in 64 256; do
      stamp "serving $dt: ShareGPT-like, concurrency $c"
      "${serve[@]}" --concurrency "$c" --workload sharegpt 2>&1 | grep -A6 "^throughput" | tee -a "$out/serving.txt"
    done
  done
fi
stamp "summary"
python3 "$here/decode_table.py" "$out/bench_ctx512.txt" "$out/bench_ctx8192.txt" "$out/peer_bf16_int4.json" \
  "$out/peer_f16.json" | tee "$out/summary.txt"
stamp "done"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
