#!/usr/bin/env bash
# What TLS costs per pipeline hop on loopback. A model of hidden 2048 and
# three layers runs greedy decode on 1 node and on 3 nodes (2 more hops),
# with plain TCP and with --tls, alternating, several repeats. A step's
# overhead is its wall time less the compute time every stage reports, so
# the compute's own noise drops out:
#   per-hop ms = (overhead per step on 3 nodes - on 1 node) / 2
#   TLS cost per hop = TLS per-hop ms - plain per-hop ms
# Every figure comes from the same run; medians are reported.
# usage: scripts/bench/tls_hop_bench.sh [--tokens N] [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
TOKENS=200
REPEATS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) TOKENS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "tls_hop_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "tls_hop_bench: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "tls_hop_bench: build first (scripts/setup.sh)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL=build/bench-models/hop-h2048-l3
if [ ! -f "$MODEL/config.json" ]; then
  mkdir -p "$MODEL"
  "$BIN/strata" make-model --out "$MODEL" --hidden 2048 --layers 3 --heads 16 --kv-heads 4 --intermediate 2048 \
    --vocab 1000 --context 1024 --dtype f32 --std 0.02 --tokenizer-vocab 300 2>/dev/null
fi
"$BIN/strata" make-secret --out "$WORK/secret" --tls "$WORK/tls" 2>/dev/null

overhead_ms() {  # nodes, extra flags...: ms per step not spent computing
  local n=$1; shift
  "$BIN/strata" generate --model "$MODEL" --local "$n" --threads 1 --prompt "The licence" --max-tokens "$TOKENS" \
    --cluster-secret-file "$WORK/secret" --json "$@" |
    jq '((.timings.prefill_s + .timings.decode_s) - (.timings.stage_compute_s | add)) * 1000 / (.tokens | length)'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$WORK/hop-plain"; : > "$WORK/hop-tls"
for r in $(seq "$REPEATS"); do
  one=$(overhead_ms 1)
  three=$(overhead_ms 3)
  one_tls=$(overhead_ms 1 --tls-dir "$WORK/tls")
  three_tls=$(overhead_ms 3 --tls-dir "$WORK/tls")
  echo "$one $three" | awk '{print ($2 - $1) / 2}' >> "$WORK/hop-plain"
  echo "$one_tls $three_tls" | awk '{print ($2 - $1) / 2}' >> "$WORK/hop-tls"
  echo "repeat $r: overhead ms/step plain 1 node $one, 3 nodes $three; TLS 1 node $one_tls, 3 nodes $three_tls" >&2
done
plain=$(median < "$WORK/hop-plain")
tls=$(median < "$WORK/hop-tls")
jq -n --argjson plain "$plain" --argjson tls "$tls" --argjson tokens "$TOKENS" \
  '{hidden_bytes_per_hop: 8192, tokens: $tokens, plain_ms_per_hop: $plain, tls_ms_per_hop: $tls,
    tls_cost_ms_per_hop: ($tls - $plain)}'
