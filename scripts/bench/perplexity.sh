#!/usr/bin/env bash
# Perplexity of the default model (models/kjv-5m) on its held-out KJV
# chapters (every 20th, scripts/kjv_corpus.sh), for its model card: F32,
# BF16, Q8_0 and Q4_K_M weights (the GGUF files `strata quantize` writes),
# each with the KV cache in the compute dtype and in INT8, scored by
# `strata perplexity` in chunks of 256 tokens as llama.cpp's
# llama-perplexity scores them. With --llama-cpp DIR, llama-perplexity runs
# on the same GGUF files (F32, Q8_0, Q4_K_M) in the same run.
# usage: scripts/bench/perplexity.sh [--chunks N] [--llama-cpp DIR] [--nodes N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
CHUNKS=0
LLAMA=""
NODES=1
THREADS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --chunks) CHUNKS=$2; shift 2 ;;
    --llama-cpp) LLAMA=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "perplexity: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "perplexity: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "perplexity: build first (scripts/setup.sh)" >&2; exit 1; }
PPL=""
if [ -n "$LLAMA" ]; then
  for b in "$LLAMA/bin/llama-perplexity" "$LLAMA/build/bin/llama-perplexity" "$LLAMA/llama-perplexity"; do
    [ -x "$b" ] && PPL=$b
  done
  [ -n "$PPL" ] || { echo "perplexity: no llama-perplexity under $LLAMA" >&2; exit 1; }
fi
MODEL=models/kjv-5m
WORK=build/kjv-data
[ -s "$WORK/heldout.txt" ] || bash scripts/kjv_corpus.sh "$WORK"
TEXT=$WORK/heldout.txt
Q=build/bench-models/kjv-5m
mkdir -p "$Q"
for type in f32 q8_0 q4_k_m; do
  [ -s "$Q/$type.gguf" ] || "$BIN/strata" quantize --model "$MODEL" --type "$type" --out "$Q/$type.gguf" 2>/dev/null
done

# strata perplexity MODEL DTYPE KV -> "PPL TOKENS TOK/S"
strata_ppl() {
  local out
  out=$("$BIN/strata" perplexity --model "$1" --dtype "$2" --kv-dtype "$3" --local "$NODES" --threads "$THREADS" \
        --file "$TEXT" --ctx 256 --chunks "$CHUNKS" --json 2>/dev/null)
  jq -r '"\(.perplexity) \(.tokens_scored) \(.tokens_scored / .seconds)"' <<<"$out"
}
llama_ppl() {
  "$PPL" -m "$1" -f "$TEXT" -c 256 -b 256 -t "$THREADS" $([ "$CHUNKS" -gt 0 ] && echo --chunks "$CHUNKS") 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p'
}

echo "kjv-5m perplexity on $(wc -w < "$TEXT") held-out words, ctx 256, $([ "$CHUNKS" -gt 0 ] && echo "$CHUNKS chunks" || echo "every chunk"), $NODES node(s)"
printf "%-8s %-10s %-10s %-10s %-10s %s\n" weights "KV compute" "KV int8" tokens "tok/s" "llama.cpp (same file)"
row() {  # NAME MODEL DTYPE [GGUF for llama.cpp]
  read -r p tokens rate < <(strata_ppl "$2" "$3" compute)
  read -r p8 _ _ < <(strata_ppl "$2" "$3" int8)
  local ref="-"
  [ -n "$PPL" ] && [ -n "${4:-}" ] && ref=$(llama_ppl "$4")
  printf "%-8s %-10.4f %-10.4f %-10s %-10.0f %s\n" "$1" "$p" "$p8" "$tokens" "$rate" "$ref"
}
row f32 "$MODEL" f32 "$Q/f32.gguf"
row bf16 "$MODEL" bf16
row q8_0 "$Q/q8_0.gguf" f32 "$Q/q8_0.gguf"
row q4_k_m "$Q/q4_k_m.gguf" f32 "$Q/q4_k_m.gguf"
