#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang + ASan + UBSan into their own build folder
# and runs each on a copy of its seed corpus (the repo's corpus is never written): FUZZ_SEED=1 and a
# fixed number of inputs per target (the table below; FUZZ_SCALE multiplies it) make a run the same
# every time, so CI replays what was checked here; FUZZ_SECONDS caps each run's time. FUZZ_SEED=0
# explores (libFuzzer picks a seed). Fails on the first crash, leak, timeout or out-of-memory,
# printing the input that caused it.
#   FUZZ_SECONDS=60 FUZZ_SCALE=1 BUILD_DIR=build-fuzz scripts/fuzz.sh [fuzz_target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-60}
seed=${FUZZ_SEED:-1}
scale=${FUZZ_SCALE:-1}
# Inputs per target: about 20 s each on one core of the 2-core CI machine.
declare -A runs=([fuzz_http_request]=300000 [fuzz_protocol]=200000 [fuzz_jinja]=60000
                 [fuzz_model_config]=25000 [fuzz_tokenizer_json]=10000)
build=${BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}

CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLMW_BUILD_FUZZERS=ON \
  -DLMW_BUILD_TESTS=OFF -DLMW_BUILD_GUI=OFF -DLMW_CUDA=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target fuzzers

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for dir in tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lmw-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$work/$t/corpus/"
  n=$(( ${runs[$t]:-10000} * scale ))
  echo "== $t: $n inputs (seed $seed, at most ${seconds}s)"
  # A crash input is written to artifacts/ (prefix), which is kept and printed on failure.
  if ! (cd "$work/$t" && "$root/$build/tests/fuzz/$t" -seed="$seed" -runs="$n" -max_total_time="$seconds" -timeout=30 \
          -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/$t/artifacts/" \
          corpus >"$work/$t/log" 2>&1); then
    tail -n 60 "$work/$t/log"
    keep="$root/$build/fuzz-failures/$t"
    mkdir -p "$keep"
    cp -r "$work/$t/artifacts/." "$keep/"
    echo "FAIL: $t crashed; input(s):"
    ls -1 "$keep"/* 2>/dev/null | sed "s/^/  /" || true
    echo "Reproduce: $build/tests/fuzz/$t $keep/<file>"
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$t/log" | tr '\n' ' ' || true
  echo
done
echo "fuzz: ${#targets[@]} target(s) ran without a crash"
