#!/usr/bin/env bash
# Benchmark (d) of tiered memory: 64 sessions of mixed lengths (16..1024
# tokens, capacity 2048 each) on one node with a 64 MiB KV budget. Reports
# how many fit with paged KV (measured: real forwards until the first
# refusal), how many the old reserve-the-capacity scheme fits in the same
# budget, and how many are served once the node also has an NVMe tier.
# usage: scripts/bench/kv_scaling_bench.sh [--budget-mib N] [--sessions N]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-mib|--sessions) ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "kv_scaling_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN/strata-kvscaling" ] || { echo "kv_scaling_bench: build first (scripts/setup.sh)" >&2; exit 1; }
MODEL=build/bench-models/kv-scale-h256-l6-c2048
if [ ! -f "$MODEL/config.json" ]; then
  "$BIN/strata" make-model --out "$MODEL" --hidden 256 --layers 6 --heads 8 --kv-heads 2 --intermediate 688 \
    --vocab 2000 --context 2048 --tokenizer-vocab 1000 2>/dev/null
fi
SWAP=build/kv-scaling-swap
mkdir -p "$SWAP"
"$BIN/strata-kvscaling" --model "$MODEL" "${ARGS[@]}" 2>/dev/null
"$BIN/strata-kvscaling" --model "$MODEL" --swap-dir "$SWAP" "${ARGS[@]}" 2>/dev/null
