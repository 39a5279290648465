#!/usr/bin/env bash
# Starts N strata-node processes on loopback ports 7700.. and writes a cluster
# file for them, for trying the multi-host flow on one machine. The nodes
# share a cluster secret (build/cluster.secret, made once):
#   scripts/local_cluster.sh 3 && build/bin/strata generate --cluster build/local-cluster.json \
#       --cluster-secret-file build/cluster.secret ...
# Stop them with: kill $(cat build/local-cluster.pids)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
BASE=${STRATA_BASE_PORT:-7700}
[ -f build/cluster.secret ] || build/bin/strata make-secret --out build/cluster.secret
: > build/local-cluster.pids
nodes=""
for i in $(seq 0 $((N - 1))); do
  port=$((BASE + i))
  build/bin/strata-node --listen "127.0.0.1:$port" --name "node-$i" --cluster-secret-file build/cluster.secret \
    --models-dir "${STRATA_MODELS_DIR:-$PWD}" > "build/node-$i.log" 2>&1 &
  echo $! >> build/local-cluster.pids
  nodes="$nodes${nodes:+, }\"127.0.0.1:$port\""
done
echo "{\"nodes\": [$nodes]}" > build/local-cluster.json
sleep 2
build/bin/strata status --cluster build/local-cluster.json --cluster-secret-file build/cluster.secret
