#!/usr/bin/env bash
# Runs test suites under the sanitizers, each in its own build folder (CUDA and the GUI off):
#   address: the engine (runtime included) and server suites under ASan + UBSan  -> build-asan
#   thread:  the runtime and server suites under TSan                            -> build-tsan
# Only the targets those suites need are built. Any report fails the run: ASan and UBSan stop at
# the first error (UBSan is built with -fno-sanitize-recover), TSan is told to halt on its first
# report, and LeakSanitizer fails a suite that leaks.
#   scripts/sanitize.sh [address|thread ...]     (default: both; SANITIZE_JOBS, SANITIZE_TIMEOUT)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=${SANITIZE_JOBS:-$(nproc)}
timeout=${SANITIZE_TIMEOUT:-900}
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(address thread)

# Suppressions: ASan/UBSan none; TSan only scripts/tsan.supp, each entry with its reason there.
# Add one only with a written reason that the report is not a bug of ours.
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4:suppressions=$root/scripts/tsan.supp

suites() {  # area -> ctest names, one per tests/<area>/test_*.cpp
  for f in tests/"$1"/test_*.cpp; do b=$(basename "$f" .cpp); echo "$1_$b"; done
}

for kind in "${kinds[@]}"; do
  case $kind in
    address)
      build=${ASAN_BUILD_DIR:-build-asan}
      tests=($(suites engine) $(suites server))
      # test_cli and test_model_loading run the `lmw` binary: instrument it too.
      targets=("${tests[@]}" lmw)
      ;;
    thread)
      build=${TSAN_BUILD_DIR:-build-tsan}
      # The threaded parts: the engine's scheduler/runtime and the server's transport, worker pool
      # and mailboxes. The other engine suites are single-threaded numerics (ASan covers them).
      tests=(engine_test_runtime $(suites server))
      targets=("${tests[@]}")
      ;;
    *) echo "sanitize.sh: unknown kind '$kind' (address or thread)" >&2; exit 2 ;;
  esac
  start=$SECONDS
  echo "== sanitize $kind: ${#tests[@]} suites in $build"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLMW_SANITIZE="$kind" -DLMW_CUDA=OFF \
    -DLMW_BUILD_GUI=OFF -DLMW_BUILD_TESTS=ON -DLMW_BUILD_FUZZERS=OFF >/dev/null
  cmake --build "$build" -j"$jobs" --target "${targets[@]}"
  built=$SECONDS
  regex="^($(IFS='|'; echo "${tests[*]}"))\$"
  (cd "$build" && ctest --output-on-failure -j"$jobs" --timeout "$timeout" -R "$regex")
  echo "== sanitize $kind: build $((built - start)) s, tests $((SECONDS - built)) s"
done
