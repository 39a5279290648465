# Sourced by the benchmarks that need the TinyLlama-1.1B-shaped model (hidden
# 2048, 22 layers, GQA 32/4, intermediate 5632, vocabulary 32000) in BF16:
# tinyllama_shape DIR writes it there (~2.2 GB) unless it is there already.
# The caller sets BIN.
tinyllama_shape() {
  local dir=$1
  [ -f "$dir/config.json" ] && return 0
  mkdir -p "$(dirname "$dir")"
  echo "writing $dir (TinyLlama-1.1B shape, BF16, ~2.2 GB) ..." >&2
  local log  # the tokenizer trainer's chatter, shown only if it fails
  log=$("$BIN/strata" make-model --out "$dir" --hidden 2048 --layers 22 --heads 32 --kv-heads 4 \
    --intermediate 5632 --vocab 32000 --context 2048 --dtype bf16 --std 0.02 --tokenizer-vocab 1000 2>&1) ||
    { echo "$log" >&2; return 1; }
}

# decode_flags NAME "$@": the --tokens N, --repeats N and --model DIR of a
# decode benchmark into TOKENS, REPEATS and MODEL (the caller's defaults
# stand otherwise); --help prints the script's usage comment.
decode_flags() {
  local name=$1; shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --tokens) TOKENS=$2; shift 2 ;;
      --repeats) REPEATS=$2; shift 2 ;;
      --model) MODEL=$2; shift 2 ;;
      -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
      *) echo "$name: unknown option $1" >&2; exit 2 ;;
    esac
  done
}
