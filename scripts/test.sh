#!/usr/bin/env bash
# Runs the whole test suite: each libFuzzer harness for 60 s over its
# committed seed corpus (scripts/fuzz.sh; STRATA_FUZZ_SECONDS=0 skips it),
# then every GoogleTest suite through ctest on the Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/strata ] || bash scripts/setup.sh
cmake --build build -j "$(nproc)"
FUZZ_SECONDS=${STRATA_FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" != 0 ]; then bash scripts/fuzz.sh --seconds "$FUZZ_SECONDS" --jobs "$(nproc)"; fi
cd build && ctest --output-on-failure -j "$(nproc)" "$@"
