# Sourced by the benchmarks that run llama.cpp beside Strata:
# llama_tool DIR NAME prints the path of llama.cpp's tool NAME in the build
# DIR (DIR/bin, DIR/build/bin or DIR itself), or fails saying it is not there.
llama_tool() {
  local b
  for b in "$1/bin/$2" "$1/build/bin/$2" "$1/$2"; do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  echo "$(basename "$0"): no $2 under $1" >&2
  return 1
}
