#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (GPU tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -f tests/e2e/package.json ]; then (cd tests/e2e && npm install --no-audit --no-fund --loglevel=error); fi
scripts/build.sh
cd build
xvfb-run -a -s "-screen 0 1600x1000x24" ctest --output-on-failure -j2 --timeout 900
