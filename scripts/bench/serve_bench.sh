#!/usr/bin/env bash
# Benchmarks of `strata serve`, every ratio from figures of the same run:
# - throughput: aggregate decode tokens/s of streamed requests at concurrency
#   1, 4 and 16 (64 with --full), 4c requests each, on 1 node and on 3 local nodes, against
#   concurrency 1 on 1 node (target at 16: >= 8x), with each stage's busy
#   share and the mean batch per level (from the coordinator's /metrics);
# - the compute roof: strata-gemv-roof's ideal speedup of a batch of 16 over
#   16 single rows on this CPU, which bounds the throughput ratio;
# - latency: p50 and p99 time to first token and inter-token latency;
# - hop cost: one decode step of a tiny model (hidden 64, 4 layers) on 1 vs
#   3 nodes, in microseconds per hop (target < 150 us on loopback);
# - long run: REQUESTS requests from 16 clients; the coordinator's and the
#   nodes' RSS before and after (flat: no leak), and nothing fails.
# usage: scripts/bench/serve_bench.sh [--model DIR] [--tokens N] [--requests N] [--full]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
MODEL=build/bench-models/tinyllama-shape-bf16
TOKENS=64
REQUESTS=1000
LEVELS="1 4 16"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --tokens) TOKENS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --full) LEVELS="1 4 16 64"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "serve_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null && command -v node >/dev/null || { echo "serve_bench: needs jq and node (scripts/setup.sh)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "serve_bench: build first (scripts/setup.sh)" >&2; exit 1; }
WORK=$(mktemp -d)
. scripts/bench/lib_serve.sh
trap 'stop; rm -rf "$WORK"' EXIT
. scripts/bench/lib_models.sh
tinyllama_shape "$MODEL"
TINY=build/bench-models/hop-h64-l4
[ -f "$TINY/config.json" ] || "$BIN/strata" make-model --out "$TINY" --hidden 64 --layers 4 --heads 4 --kv-heads 4 \
  --intermediate 128 --vocab 256 --context 1024 --tokenizer-vocab 200 2>/dev/null

rss_kib() { ps -o rss= -p "$1" | tr -d ' '; }
node_pids() { pgrep -P "$PID" -f strata-node | tr '\n' ' '; }

# The per-stage counters on the coordinator's /metrics, as JSON:
# [{stage, compute_s, batches, rows}].
stages_json() {
  curl -s "$URL/metrics" | awk '
    /^strata:node_(compute_seconds|batches|batch_rows)_total\{/ {
      match($0, /stage="[0-9]+"/); st = substr($0, RSTART + 7, RLENGTH - 8)
      split($1, name, "{"); v[st, name[1]] = $2; seen[st] = 1 }
    END { printf "["; n = 0
      for (st in seen) { printf "%s{\"stage\": %s, \"compute_s\": %s, \"batches\": %s, \"rows\": %s}", (n++ ? "," : ""), st,
          v[st, "strata:node_compute_seconds_total"] + 0, v[st, "strata:node_batches_total"] + 0, v[st, "strata:node_batch_rows_total"] + 0 }
      printf "]\n" }'
}

# Throughput and latency, with each stage's busy share and mean batch.
results="[]"
for nodes in 1 3; do
  serve "$MODEL" "$nodes" bf16
  node scripts/bench/serve_load.mjs "$URL" 1 1 4 >/dev/null  # warm up
  for c in $LEVELS; do
    m0=$(stages_json); t0=$(date +%s.%N)
    r=$(node scripts/bench/serve_load.mjs "$URL" "$c" $((4 * c)) "$TOKENS")  # 4 waves: mostly steady state
    m1=$(stages_json); t1=$(date +%s.%N)
    stages=$(jq -c -n --argjson a "$m0" --argjson b "$m1" --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" '
      [$b[] as $e | ($a[] | select(.stage == $e.stage)) as $s |
        {stage: $e.stage, busy: (($e.compute_s - $s.compute_s) / $wall),
         mean_batch: (if $e.batches > $s.batches then ($e.rows - $s.rows) / ($e.batches - $s.batches) else 0 end)}]
      | sort_by(.stage)')
    echo "nodes $nodes concurrency $c: $r stages $stages" >&2
    results=$(jq -c --argjson n "$nodes" --argjson r "$r" --argjson s "$stages" '. + [$r + {nodes: $n, stages: $s}]' <<<"$results")
  done
  stop
done
roof=$("$BIN/strata-gemv-roof")
base=$(jq '[.[] | select(.nodes == 1 and .concurrency == 1)][0].tokens_per_s' <<<"$results")
at16=$(jq '[.[] | select(.nodes == 1 and .concurrency == 16)][0].tokens_per_s' <<<"$results")

# Hop cost: decode on the tiny model, 1 vs 3 nodes (2 more hops), medians of 5.
hop_us=()
for _ in 1 2 3 4 5; do
  one=$("$BIN/strata" generate --model "$TINY" --local 1 --prompt-tokens 1,2,3 --max-tokens 200 --json | jq .timings.decode_s)
  three=$("$BIN/strata" generate --model "$TINY" --local 3 --prompt-tokens 1,2,3 --max-tokens 200 --json | jq .timings.decode_s)
  hop_us+=("$(awk -v a="$one" -v b="$three" 'BEGIN {printf "%.1f", (b - a) / 199 / 2 * 1e6}')")
done
hop=$(printf '%s\n' "${hop_us[@]}" | sort -n | sed -n 3p)

# Long run on the tiny model: RSS before and after.
serve "$TINY" 3 f32
node scripts/bench/serve_load.mjs "$URL" 16 64 16 >/dev/null
pids="$PID $(node_pids)"
before=0; for p in $pids; do before=$((before + $(rss_kib "$p"))); done
long=$(node scripts/bench/serve_load.mjs "$URL" 16 "$REQUESTS" 16)
after=0; for p in $pids; do after=$((after + $(rss_kib "$p"))); done
stop

ideal16=$(jq '[.batches[] | select(.batch == 16)][0].ideal_speedup' <<<"$roof")
jq -n --argjson results "$results" --argjson base "$base" --argjson at16 "$at16" --argjson hop "$hop" \
  --argjson long "$long" --argjson before "$before" --argjson after "$after" --argjson roof "$roof" \
  --argjson ideal16 "$ideal16" \
  '{throughput: $results, speedup_at_16_over_1: ($at16 / $base), compute_roof: $roof,
    speedup_at_16_of_roof: (($at16 / $base) / $ideal16), hop_us: $hop,
    long_run: ($long + {rss_before_kib: $before, rss_after_kib: $after, rss_growth: (($after - $before) / $before)}),
    targets: {speedup_at_16_over_1: ">= 8", hop_us: "< 150", long_run: "failed == 0, rss flat"}}'
