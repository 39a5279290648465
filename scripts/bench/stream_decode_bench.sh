#!/usr/bin/env bash
# Benchmark (b) of tiered memory: decode tokens/s of the TinyLlama-1.1B-shaped
# BF16 model on one node whose RAM budget is half its weights, so that the
# layers it cannot hold stream from NVMe at every token. Its limit is the
# disk: fio's read bandwidth (io_uring, O_DIRECT, 1 MiB blocks, queue depth
# 32, same file system, same run) divided by the bytes streamed per token.
#   efficiency = tokens/s / (disk GB/s / GB streamed per token)   (target >= 0.8)
# usage: scripts/bench/stream_decode_bench.sh [--tokens N] [--repeats N] [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
TOKENS=24
REPEATS=3
MODEL=build/bench-models/tinyllama-shape-bf16
DIR=build/stream-bench
PORT=7391
. scripts/bench/lib_models.sh
decode_flags stream_decode_bench "$@"
command -v fio >/dev/null || { echo "stream_decode_bench: needs fio (scripts/setup.sh installs it)" >&2; exit 1; }
command -v jq >/dev/null || { echo "stream_decode_bench: needs jq" >&2; exit 1; }
tinyllama_shape "$MODEL"
mkdir -p "$DIR"
weight_bytes=0
for f in "$MODEL"/*.safetensors; do weight_bytes=$((weight_bytes + $(stat -c %s "$f"))); done
budget_mib=$((weight_bytes / 2 / 1048576))
LOG="$DIR/node.log"
"$BIN/strata-node" --listen "127.0.0.1:$PORT" --models-dir "$(dirname "$(realpath "$MODEL")")" --memory-limit "${budget_mib}MiB" --swap-dir "$DIR" --threads 2 2>"$LOG" &
NODE=$!
trap 'kill $NODE 2>/dev/null; wait $NODE 2>/dev/null; rm -f "$DIR/fio.dat"' EXIT
for _ in $(seq 100); do "$BIN/strata" status --nodes "127.0.0.1:$PORT" >/dev/null 2>&1 && break; sleep 0.1; done

fio_read() {
  fio --name=stream --filename="$DIR/fio.dat" --size=2G --bs=1M --ioengine=io_uring --direct=1 --iodepth=32 \
    --iodepth_batch_submit=32 --iodepth_batch_complete_min=1 --rw=read --output-format=json 2>/dev/null |
    jq '.jobs[0].read.bw_bytes / 1e9'
}
decode() {
  "$BIN/strata" generate --model "$MODEL" --nodes "127.0.0.1:$PORT" --dtype bf16 --prompt "The licence" \
    --max-tokens "$TOKENS" --json 2>/dev/null | jq .timings.decode_tokens_per_s
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$DIR/rows"
for r in $(seq "$REPEATS"); do
  d=$(decode); f=$(fio_read)
  echo "$d $f" >> "$DIR/rows"
  echo "repeat $r: decode $d tok/s, disk $f GB/s" >&2
done
# What the node streams per token: every layer it did not keep, one slot each.
line=$(grep "streamed from NVMe" "$LOG" | tail -1)
streamed=$(sed -E 's/.*, \[([0-9]+), ([0-9]+)\) streamed.*/\2 - \1/' <<<"$line" | bc)
slot_mib=$(sed -E 's/.*\(([0-9]+) MiB a layer.*/\1/' <<<"$line")
gb_per_token=$(jq -n "$streamed * $slot_mib * 1048576 / 1e9")
d=$(awk '{print $1}' "$DIR/rows" | median)
f=$(awk '{print $2}' "$DIR/rows" | median)
jq -n --argjson d "$d" --argjson f "$f" --argjson gb "$gb_per_token" --argjson n "$streamed" \
  --argjson budget "$budget_mib" --argjson w "$weight_bytes" \
  '{ram_budget_mib: $budget, weight_gb: ($w / 1e9), streamed_layers: $n, gb_streamed_per_token: $gb,
    decode_tokens_per_s: $d, disk_read_gb_per_s: $f, limit_tokens_per_s: ($f / $gb), efficiency: ($d / ($f / $gb))}'
