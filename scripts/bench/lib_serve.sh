# Sourced by the benchmarks that load `strata serve`: serve MODEL NODES DTYPE
# [FLAGS...] starts one on loopback (its output in $WORK) and sets URL and
# PID; stop ends it. The caller sets BIN and WORK, and traps stop.
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
serve() {  # serve MODEL NODES DTYPE: starts strata serve, sets URL and PID
  local model=$1 nodes=$2 dtype=$3; shift 3
  "$BIN/strata" serve --model "$model" --local "$nodes" --dtype "$dtype" --http 127.0.0.1:0 --max-running 64 "$@" \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
  PID=$!
  URL=""
  for _ in $(seq 1200); do
    URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/serve.out" 2>/dev/null || true)
    [ -n "$URL" ] && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
    sleep 0.1
  done
  echo "$(basename "$0"): strata serve did not start" >&2; exit 1
}
