#!/usr/bin/env bash
# Benchmark (c) of tiered memory: resuming a 2,040-token conversation (the most a 2,048 context leaves room to continue) whose
# KV the node parked on NVMe, against recomputing its prefix. Both runs add
# the same 6 new tokens and generate one; on the TinyLlama-1.1B-shaped BF16
# model, one node with an NVMe tier. Reports both times (the prompt phase of
# each run: reading the KV back plus 6 tokens, or 2,040 + 6 tokens of
# prefill) and their ratio. Resume must be the faster.
# usage: scripts/bench/resume_bench.sh [--model DIR] [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
MODEL=build/bench-models/tinyllama-shape-bf16
DIR=build/resume-bench
PORT=7392
REPEATS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "resume_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "resume_bench: needs jq" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "resume_bench: no $MODEL (scripts/bench/decode_bench.sh writes it)" >&2; exit 1; }
mkdir -p "$DIR"
"$BIN/strata-node" --listen "127.0.0.1:$PORT" --models-dir "$(dirname "$(realpath "$MODEL")")" --swap-dir "$DIR" --threads 2 2>"$DIR/node.log" &
NODE=$!
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null' EXIT
for _ in $(seq 100); do "$BIN/strata" status --nodes "127.0.0.1:$PORT" >/dev/null 2>&1 && break; sleep 0.1; done
gen() { "$BIN/strata" generate --model "$MODEL" --nodes "127.0.0.1:$PORT" --dtype bf16 --json "$@" 2>/dev/null; }
ids() { seq "$1" "$2" | awk '{printf "%s%d", (NR > 1 ? "," : ""), 1 + ($1 * 37) % 999}'; }

# The model's context is 2,048: the conversation holds 2,040 tokens (2,039 of
# prompt and the one generated), and the continuation adds 6 and generates 1.
PREFIX=$(ids 1 2039)
MORE=$(ids 3000 3005)
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: > "$DIR/rows"
for r in $(seq "$REPEATS"); do
  first=$(gen --prompt-tokens "$PREFIX" --max-tokens 1 --keep-session)
  id=$(jq -r .session_id <<<"$first")
  held=$(jq '(.prompt_tokens | length) + (.tokens | length)' <<<"$first")
  # The node parks the idle session on NVMe; wait until it has.
  for _ in $(seq 100); do grep -q "swap out: .*parked while idle" "$DIR/node.log" && break; sleep 0.05; done
  resume=$(gen --session "$id" --prompt-tokens "$MORE" --max-tokens 1)
  whole=$(jq -r '(.prompt_tokens + .tokens) | join(",")' <<<"$first")
  recompute=$(gen --prompt-tokens "$whole,$MORE" --max-tokens 1)
  same=$(jq -n --argjson a "$resume" --argjson b "$recompute" '$a.tokens == $b.tokens')
  rs=$(jq .timings.prefill_s <<<"$resume"); cs=$(jq .timings.prefill_s <<<"$recompute")
  echo "$rs $cs" >> "$DIR/rows"
  echo "repeat $r: $held tokens held; resume $rs s, recompute $cs s, same next token: $same" >&2
  : > "$DIR/node.log.mark"; sed -i 's/parked while idle/parked (seen)/' "$DIR/node.log"
done
rs=$(awk '{print $1}' "$DIR/rows" | median); cs=$(awk '{print $2}' "$DIR/rows" | median)
jq -n --argjson r "$rs" --argjson c "$cs" --argjson n "$held" \
  '{conversation_tokens: $n, resume_s: $r, recompute_s: $c, recompute_over_resume: ($c / $r)}'
