#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -f tests/e2e/package.json ]; then (cd tests/e2e && npm install --no-audit --no-fund --loglevel=error); fi
scripts/build.sh
# libFuzzer harnesses (tests/fuzz): their own clang + ASan/UBSan build in build-fuzz, a fixed seed and
# number of inputs per target (the same run every time), at most 60 s each.
FUZZ_SECONDS=60 scripts/fuzz.sh
(cd build && xvfb-run -a -s "-screen 0 1600x1000x24" ctest --output-on-failure -j2 --timeout 900)
# The engine and server suites again under ASan + UBSan, the runtime and server ones under TSan,
# each in its own build folder (build-asan, build-tsan; CUDA and GUI off). Any report fails CI.
scripts/sanitize.sh address thread
