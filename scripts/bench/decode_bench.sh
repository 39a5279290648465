#!/usr/bin/env bash
# Decode and prefill throughput of a TinyLlama-1.1B-shaped BF16 model on 1, 2
# and 3 local nodes, reported against the machine's memory read bandwidth
# measured in the same run:
#   decode efficiency = tokens/s x weight bytes / bandwidth   (target >= 0.7)
#   pipeline ratio    = 3-node decode tokens/s / 1-node        (target >= 0.9)
# usage: scripts/bench/decode_bench.sh [--tokens N] [--repeats N] [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
TOKENS=64
REPEATS=5
MODEL=build/bench-models/tinyllama-shape-bf16
. scripts/bench/lib_models.sh
decode_flags decode_bench "$@"
command -v jq >/dev/null || { echo "decode_bench: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "decode_bench: build first (scripts/setup.sh)" >&2; exit 1; }

tinyllama_shape "$MODEL"
weight_bytes=0
for f in "$MODEL"/*.safetensors; do weight_bytes=$((weight_bytes + $(stat -c %s "$f"))); done

decode() {  # decode tokens/s of one run on N local nodes
  "$BIN/strata" generate --model "$MODEL" --local "$1" --dtype bf16 --prompt "The licence" \
    --max-tokens "$TOKENS" --json | jq .timings.decode_tokens_per_s
}
bandwidth() { "$BIN/strata-membw" --mib 1024 --passes 3 | jq .read_gb_per_s; }

# This machine's bandwidth moves with its neighbours' load from minute to
# minute. So each repeat brackets the 2- and 3-node runs between two 1-node
# runs and two bandwidth probes, every ratio is taken within its repeat
# (against the mean of its brackets), and the medians are reported.
rows="[]"
for r in $(seq "$REPEATS"); do
  bw_a=$(bandwidth); d1_a=$(decode 1); d2=$(decode 2); d3=$(decode 3); d1_b=$(decode 1); bw_b=$(bandwidth)
  echo "repeat $r: bandwidth $bw_a/$bw_b GB/s, decode tok/s: 1 node $d1_a/$d1_b, 2 nodes $d2, 3 nodes $d3" >&2
  rows=$(jq -c --argjson bw "$(jq -n "($bw_a + $bw_b) / 2")" --argjson d1 "$(jq -n "($d1_a + $d1_b) / 2")" \
    --argjson d2 "$d2" --argjson d3 "$d3" '. + [{bw: $bw, d1: $d1, d2: $d2, d3: $d3}]' <<<"$rows")
done

# A 128-token prompt: BOS + 127 copies of a one-piece word (no leading
# space: it would be a piece of its own); prompt_tokens reports the count.
prompt="the$(printf ' the%.0s' $(seq 126))"
prefill=$("$BIN/strata" generate --model "$MODEL" --local 1 --dtype bf16 --prompt "$prompt" --max-tokens 1 --json)
prompt_tokens=$(echo "$prefill" | jq '.prompt_tokens | length')
prompt_tps=$(echo "$prefill" | jq .timings.prompt_tokens_per_s)

jq -n --argjson rows "$rows" --argjson wb "$weight_bytes" --argjson pt "$prompt_tokens" --argjson ptps "$prompt_tps" '
  def median: sort | .[(length / 2 | floor)];
  {
    runs: $rows, weight_bytes: $wb,
    bandwidth_gb_per_s: ($rows | map(.bw) | median),
    decode_tokens_per_s: {"1": ($rows | map(.d1) | median), "2": ($rows | map(.d2) | median), "3": ($rows | map(.d3) | median)},
    decode_efficiency_1_node: ($rows | map(.d1 * $wb / (.bw * 1e9)) | median),
    pipeline_ratio_2_nodes: ($rows | map(.d2 / .d1) | median),
    pipeline_ratio_3_nodes: ($rows | map(.d3 / .d1) | median),
    prompt_tokens: $pt, prompt_tokens_per_s: $ptps,
    targets: {decode_efficiency_1_node: ">= 0.7", pipeline_ratio_3_nodes: ">= 0.9"}}'
