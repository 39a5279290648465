#!/usr/bin/env bash
# Benchmark (a) of tiered memory: read and write GB/s of Strata's swap I/O
# engine (io_uring, O_DIRECT, 256 KiB pages, queue depth 32) against the best
# this disk gives — fio with io_uring, O_DIRECT, the same block size and
# queue depth — measured in the same run, on the same file system. Also plain
# O_DIRECT pread at queue depth 1. fio gets its fastest settings (registered
# buffers and files, batched submission); both write incompressible data.
# Target: engine / fio >= 0.9 both ways.
# usage: scripts/bench/swap_io_bench.sh [--dir DIR] [--mib N] [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=build/swap-bench
MIB=2048
REPEATS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --mib) MIB=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "swap_io_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v fio >/dev/null || { echo "swap_io_bench: needs fio (scripts/setup.sh installs it)" >&2; exit 1; }
command -v jq >/dev/null || { echo "swap_io_bench: needs jq" >&2; exit 1; }
[ -x build/bin/strata-swapbench ] || { echo "swap_io_bench: build first (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$DIR"
trap 'rm -f "$DIR/fio.dat" "$DIR/engine.dat"' EXIT

fio_rate() {  # rw: write | read -> GB/s
  fio --name=swap --filename="$DIR/fio.dat" --size="${MIB}M" --bs=256k --ioengine=io_uring --direct=1 \
    --iodepth=32 --iodepth_batch_submit=32 --iodepth_batch_complete_min=1 --fixedbufs --registerfiles \
    --rw="$1" --output-format=json 2>/dev/null | jq ".jobs[0].$1.bw_bytes / 1e9"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$DIR/rows"
for r in $(seq "$REPEATS"); do
  fw=$(fio_rate write); fr=$(fio_rate read)
  e=$(build/bin/strata-swapbench --file "$DIR/engine.dat" --mib "$MIB" --page-kib 256 --depth 32)
  ew=$(echo "$e" | jq .write_gb_per_s); er=$(echo "$e" | jq .read_gb_per_s); p1=$(echo "$e" | jq .pread_qd1_read_gb_per_s)
  echo "repeat $r: fio write $fw read $fr | engine write $ew read $er | pread qd1 $p1 (GB/s)" >&2
  echo "$fw $fr $ew $er $p1" >> "$DIR/rows"
done
col() { awk -v c="$1" '{print $c}' "$DIR/rows" | median; }
fw=$(col 1); fr=$(col 2); ew=$(col 3); er=$(col 4); p1=$(col 5)
jq -n --argjson fw "$fw" --argjson fr "$fr" --argjson ew "$ew" --argjson er "$er" --argjson p1 "$p1" --argjson mib "$MIB" \
  '{file_mib: $mib, page_kib: 256, queue_depth: 32,
    fio_gb_per_s: {write: $fw, read: $fr}, engine_gb_per_s: {write: $ew, read: $er}, pread_qd1_read_gb_per_s: $p1,
    engine_over_fio: {write: ($ew / $fw), read: ($er / $fr)}, target: ">= 0.9"}'
