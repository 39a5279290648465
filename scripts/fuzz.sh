#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, ASan + UBSan) in build-fuzz/ and runs
# each for a set time, J at a time, over its committed seed corpus
# (tests/fuzz/corpus/NAME) plus what earlier runs kept (build-fuzz/corpus/NAME).
# A crash is saved in build-fuzz/crashes/NAME/ and fails the run; turn each
# into a regression test before fixing it.
# usage: scripts/fuzz.sh [--seconds N] [--jobs J] [--make-seeds] [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=60
JOBS=2
MAKE_SEEDS=0
ALL=(safetensors_fuzz gguf_fuzz config_json_fuzz tokenizer_config_fuzz tokenizer_json_fuzz jinja_fuzz chat_request_fuzz http_request_fuzz tensor_codec_fuzz stage_rpc_fuzz beacon_fuzz)
NAMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --make-seeds) MAKE_SEEDS=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) NAMES+=("$1"); shift ;;
  esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=("${ALL[@]}")
command -v clang++ >/dev/null || { echo "fuzz: needs clang (scripts/setup.sh installs it)" >&2; exit 1; }

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_FUZZ=ON \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache >/dev/null
fi
cmake --build build-fuzz -j "$(nproc)" --target "${NAMES[@]}" make_seeds
if [ "$MAKE_SEEDS" = 1 ]; then build-fuzz/bin/make_seeds tests/fuzz/corpus; fi

run_one() {  # NAME: runs one fuzzer, prints one result line
  local name=$1 log=build-fuzz/logs/$1.log
  mkdir -p "build-fuzz/corpus/$name" "build-fuzz/crashes/$name" build-fuzz/logs "tests/fuzz/corpus/$name"
  local extra=()
  # The RPC harness keeps one node for the whole run, as a real node lives.
  [ "$name" = stage_rpc_fuzz ] && extra=(-detect_leaks=0)
  local rc=0
  ASAN_OPTIONS=alloc_dealloc_mismatch=0 "build-fuzz/bin/$name" -max_total_time="$SECONDS_EACH" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$name/" "${extra[@]}" \
    "build-fuzz/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
  local execs cov crashes
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -n1 | grep -o '[0-9]*' || echo 0)
  crashes=$(find "build-fuzz/crashes/$name" -type f | wc -l)
  printf '%-24s %-8s execs %-10s cov %-6s crash files %s\n' "$name" "$([ $rc = 0 ] && echo ok || echo FAILED)" \
    "${execs:-0}" "${cov:-0}" "$crashes"
  [ "$rc" = 0 ]
}
export -f run_one
export SECONDS_EACH
echo "fuzzing ${NAMES[*]} for ${SECONDS_EACH}s each, $JOBS at a time"
if printf '%s\n' "${NAMES[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'; then
  echo "fuzz: no crash"
else
  echo "fuzz: a fuzzer failed; see build-fuzz/logs/ and build-fuzz/crashes/" >&2
  exit 1
fi
