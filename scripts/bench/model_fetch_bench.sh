#!/usr/bin/env bash
# Benchmarks of shard downloads, on the TinyLlama-1.1B-shaped BF16 model:
# - aggregate fetch throughput of 3 local nodes, each fetching its shard's
#   tensors from one `strata serve-model` (verified, into its cache, synced
#   to disk), against curl fetching the same bytes from the same server in 3
#   concurrent streams into files on the same disk, synced too. The nodes
#   also hash every tensor (SHA-256); curl does not. Target: nodes / curl >= 0.9.
# - time to first token (the whole `strata generate --max-tokens 1`) on a
#   cold start (empty caches) and on a warm start (nodes restarted, caches
#   warm). Target warm: <= 2 s.
# usage: scripts/bench/model_fetch_bench.sh [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
MODEL=build/bench-models/tinyllama-shape-bf16
DIR=build/fetch-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "model_fetch_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v curl >/dev/null || { echo "model_fetch_bench: needs curl" >&2; exit 1; }
command -v jq >/dev/null || { echo "model_fetch_bench: needs jq" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "model_fetch_bench: no $MODEL (scripts/bench/decode_bench.sh writes it)" >&2; exit 1; }
rm -rf "$DIR"; mkdir -p "$DIR"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/strata" serve-model --model "$MODEL" --listen 127.0.0.1:7781 >"$DIR/serve.out" 2>"$DIR/serve.err" &
PIDS+=($!)
for _ in $(seq 600); do grep -q "serving model" "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=http://127.0.0.1:7781

start_nodes() {  # PHASE: fresh processes; the caches persist across calls
  for i in 0 1 2; do
    "$BIN/strata-node" --listen "127.0.0.1:$((7790 + i))" --threads 1 --no-discovery --cache-dir "$DIR/cache-$i" \
      2>"$DIR/node-${PHASE}-$i.log" &
    PIDS+=($!)
  done
  for _ in $(seq 100); do "$BIN/strata" status --nodes "$NODES" >/dev/null 2>&1 && break; sleep 0.2; done
}
stop_nodes() { for i in 0 1 2; do pkill -f "127.0.0.1:$((7790 + i)) " || true; done; sleep 0.5; }
NODES=127.0.0.1:7790,127.0.0.1:7791,127.0.0.1:7792
ttft() {  # PHASE: seconds of a whole generate of one token
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN/strata" generate --model "$MODEL" --nodes "$NODES" --dtype bf16 --prompt "The licence" --max-tokens 1 \
    --distribute --model-server "$URL" --json >/dev/null 2>"$DIR/generate-$PHASE.err" || {
    echo "model_fetch_bench: generate failed:" >&2; tail -3 "$DIR/generate-$PHASE.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

# curl: the model's bytes in 3 concurrent range streams.
size=$(stat -c %s "$MODEL"/model.safetensors)
third=$((size / 3))
t0=$(date +%s.%N)
CURLS=()
for i in 0 1 2; do
  from=$((i * third)); to=$(( i == 2 ? size - 1 : (i + 1) * third - 1 ))
  curl -s -r "$from-$to" -o "$DIR/curl-$i.bin" "$URL/files/model.safetensors" &
  CURLS+=($!)
done
wait "${CURLS[@]}"
sync -f "$DIR"/curl-*.bin
t1=$(date +%s.%N)
rm -f "$DIR"/curl-*.bin
curl_gbps=$(awk -v n="$size" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", n / (b - a) / 1e9}')

PHASE=cold; start_nodes
cold=$(ttft)
# The nodes' fetches ran at once: aggregate = all bytes / the longest.
fetched=$(grep -h "bytes fetched from" "$DIR"/node-cold-*.log | sed -E 's/.*: ([0-9]+) bytes fetched from .* in ([0-9.]+) s.*/\1 \2/')
bytes=$(awk '{s += $1} END {print s}' <<<"$fetched")
longest=$(awk '$2 > m {m = $2} END {print m}' <<<"$fetched")
nodes_gbps=$(awk -v n="$bytes" -v s="$longest" 'BEGIN {printf "%.4f", n / s / 1e9}')
stop_nodes
PHASE=warm; start_nodes
warm=$(ttft)
warm_fetched=$(grep -h "bytes fetched from" "$DIR"/node-warm-*.log | sed -E 's/.*: ([0-9]+) bytes fetched.*/\1/' | awk '{s += $1} END {print s + 0}')
jq -n --argjson size "$size" --argjson c "$curl_gbps" --argjson n "$nodes_gbps" --argjson bytes "$bytes" \
  --argjson cold "$cold" --argjson warm "$warm" --argjson wf "$warm_fetched" \
  '{model_bytes: $size, curl_gb_per_s: $c, nodes_fetched_bytes: $bytes, nodes_gb_per_s: $n, nodes_over_curl: ($n / $c),
    cold_start_s: $cold, warm_start_s: $warm, warm_start_fetched_bytes: $wf,
    targets: {nodes_over_curl: ">= 0.9", warm_start_s: "<= 2"}}'
