#!/usr/bin/env bash
# Perplexity of the default model (models/kjv-5m) on its held-out KJV
# chapters (every 20th, scripts/kjv_corpus.sh), for its model card: F32,
# BF16, Q8_0 and Q4_K_M weights (the GGUF files `strata quantize` writes),
# each with the KV cache in the compute dtype and in INT8, scored by
# `strata perplexity` in chunks of 256 tokens as llama.cpp's
# llama-perplexity scores them. With --llama-cpp DIR, llama-perplexity runs
# on the same GGUF files (F32, Q8_0, Q4_K_M) in the same run. With --card
# FILE, the table also goes into that model card as its "## Perplexity"
# section (replacing the one there).
# usage: scripts/bench/perplexity.sh [--chunks N] [--llama-cpp DIR] [--nodes N] [--threads N]
#                                    [--model DIR] [--card FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
CHUNKS=0
LLAMA=""
NODES=1
THREADS=$(nproc)
MODEL=models/kjv-5m
CARD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --chunks) CHUNKS=$2; shift 2 ;;
    --llama-cpp) LLAMA=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --card) CARD=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "perplexity: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "perplexity: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "perplexity: build first (scripts/setup.sh)" >&2; exit 1; }
PPL=""
. scripts/bench/lib_llama.sh
[ -z "$LLAMA" ] || PPL=$(llama_tool "$LLAMA" llama-perplexity) || exit 1
WORK=build/kjv-data
[ -s "$WORK/heldout.txt" ] || bash scripts/kjv_corpus.sh "$WORK"
# One chapter a line there; here one text, chapters joined by a space: a
# newline is no piece of the vocabulary (the tokenizer learnt verses), which
# llama.cpp's tokenizer cannot take.
TEXT=$WORK/heldout-joined.txt
tr '\n' ' ' < "$WORK/heldout.txt" > "$TEXT"
Q=build/bench-models/$(basename "$MODEL")
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
  local out
  out=$("$PPL" -m "$1" -f "$TEXT" -c 256 -b 256 -t "$THREADS" $([ "$CHUNKS" -gt 0 ] && echo --chunks "$CHUNKS") 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' || true)
  echo "${out:-failed}"
}

TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
{
echo "Perplexity on the $(wc -w < "$TEXT") held-out words (\`scripts/bench/perplexity.sh\`: \`strata perplexity\`, chunks of"
echo "256 tokens, the second half of each scored, as llama.cpp's llama-perplexity scores them;"
echo "$([ "$CHUNKS" -gt 0 ] && echo "the first $CHUNKS chunks" || echo "every chunk"), $NODES node(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))."
echo "Q8_0 and Q4_K_M are the GGUF files \`strata quantize\` writes; INT8 KV is \`--kv-dtype int8\`."
[ -n "$PPL" ] && echo "llama-perplexity: llama.cpp $(git -C "$LLAMA" rev-parse --short HEAD 2>/dev/null || echo "at $LLAMA"), same text, same files, same chunks."
echo
echo "| weights | KV compute | KV int8 | tokens | tokens/s | llama-perplexity, same file |"
echo "|---|---|---|---|---|---|"
row() {  # NAME MODEL DTYPE [GGUF for llama.cpp]
  read -r p tokens rate < <(strata_ppl "$2" "$3" compute)
  read -r p8 _ _ < <(strata_ppl "$2" "$3" int8)
  local ref="-"
  [ -n "$PPL" ] && [ -n "${4:-}" ] && ref=$(llama_ppl "$4")
  printf "| %s | %.4f | %.4f | %s | %.0f | %s |\n" "$1" "$p" "$p8" "$tokens" "$rate" "$ref"
}
row f32 "$MODEL" f32 "$Q/f32.gguf"
row bf16 "$MODEL" bf16
row q8_0 "$Q/q8_0.gguf" f32 "$Q/q8_0.gguf"
row q4_k_m "$Q/q4_k_m.gguf" f32 "$Q/q4_k_m.gguf"
} | tee "$TABLE"
if [ -n "$CARD" ]; then
  # The card up to its old section, without trailing blank lines; then the new one.
  awk '/^## Perplexity/ { exit } { lines[++n] = $0 } END { while (n > 0 && lines[n] == "") n--; for (i = 1; i <= n; i++) print lines[i] }' \
    "$CARD" > "$CARD.new"
  { echo; echo "## Perplexity"; echo; cat "$TABLE"; } >> "$CARD.new"
  mv "$CARD.new" "$CARD"
  echo "wrote the table into $CARD" >&2
fi
