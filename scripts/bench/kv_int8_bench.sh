#!/usr/bin/env bash
# INT8 KV against full-precision KV, on the default model and on a generated
# test model (and with --big on the TinyLlama-1.1B-shaped BF16 model): KV
# bytes per token for F32, BF16 and INT8; greedy-token agreement over 256
# generated tokens (teacher-forced, and the identical prefix free-running);
# max and mean absolute logit deviation. One JSON line per model and dtype.
# usage: scripts/bench/kv_int8_bench.sh [--tokens N] [--big]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
TOKENS=256
BIG=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) TOKENS=$2; shift 2 ;;
    --big) BIG=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "kv_int8_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "kv_int8_bench: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata-kvquality" ] || { echo "kv_int8_bench: build first (scripts/setup.sh)" >&2; exit 1; }
TEST_MODEL=build/bench-models/kv-test-h256-l6
if [ ! -f "$TEST_MODEL/config.json" ]; then
  "$BIN/strata" make-model --out "$TEST_MODEL" --hidden 256 --layers 6 --heads 8 --kv-heads 2 --intermediate 688 \
    --vocab 2000 --context 1024 --tokenizer-vocab 1000 2>/dev/null
fi
PROMPT="In the beginning God created the heaven and the earth"
models=("models/kjv-5m f32" "models/kjv-5m bf16" "$TEST_MODEL f32" "$TEST_MODEL bf16")
[ "$BIG" = 1 ] && models+=("build/bench-models/tinyllama-shape-bf16 bf16")
for entry in "${models[@]}"; do
  read -r model dtype <<<"$entry"
  [ -f "$model/config.json" ] || { echo "kv_int8_bench: no $model (scripts/bench/decode_bench.sh writes it)" >&2; continue; }
  ids=$("$BIN/strata" generate --model "$model" --local 1 --prompt "$PROMPT" --max-tokens 1 --json 2>/dev/null |
    jq -r '.prompt_tokens | join(",")')
  "$BIN/strata-kvquality" --model "$model" --dtype "$dtype" --tokens "$TOKENS" --prompt-tokens "$ids"
done
