#!/usr/bin/env bash
# Configures and builds into build/ (CUDA kernels too when nvcc is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
