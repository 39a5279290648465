#!/usr/bin/env bash
# Runs the whole test suite (GoogleTest through ctest) on the Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/strata ] || bash scripts/setup.sh
cmake --build build -j "$(nproc)"
cd build && ctest --output-on-failure -j "$(nproc)" "$@"
