#!/usr/bin/env bash
# The engine at the limit: decode and 128-token prefill of a
# TinyLlama-1.1B-shaped model (hidden 2048, 22 layers, GQA 32/4,
# intermediate 5632) in BF16, F32, Q8_0 and Q4_K_M, on one node, from the
# same GGUF files for Strata and (with --llama-cpp DIR) llama.cpp's
# llama-bench, interleaved in one run with the memory bandwidth:
#   decode efficiency = weight bytes read per token x tokens/s / bandwidth (target >= 0.8)
#   vs llama.cpp      = Strata tokens/s / llama.cpp tokens/s             (target >= 1.0)
#                       as medians over --repeats, and (*_paired) the median of each repeat's
#                       own ratio, the two measured back to back: on a VM whose speed drifts by
#                       tens of percent within minutes, the paired ratio is the one to read
#   prefill GFLOP/s   = 2 x the layers' matrix weights x prompt tokens/s, against the
#                       CPU's f32 FMA peak (strata-gemv-roof --peak) measured in the same run
# Each type runs once per kernel cap in --kernels (default "auto avx2": on an
# AVX-512 machine the second row is what an AVX2-only CPU runs).
# The fixed cost per token: decode tokens/s of a tiny model (hidden 64, 4
# layers, vocabulary 256: its weights cost nothing) on one node, against
# llama.cpp on the same F32 GGUF file (target >= 1.0).
# With --batch, also the continuous batch: aggregate decode tokens/s of
# `strata serve` on one node with Q4_K_M at concurrency 16 over concurrency
# 1, against the batch roof strata-gemv-roof measures for Q4_K in the same
# run (the ideal speedup of 16 rows over 16 single rows on this CPU).
# usage: scripts/bench/engine_bench.sh [--llama-cpp DIR] [--tokens N] [--repeats N] [--types "bf16 q4_k_m"]
#                                      [--kernels "auto avx2"] [--threads N] [--batch]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=build/bin
LLAMA=""
TOKENS=64
REPEATS=1
TYPES="bf16 f32 q8_0 q4_k_m"
KERNELS="auto avx2"
THREADS=$(nproc)
MODELS=build/bench-models
BATCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-cpp) LLAMA=$2; shift 2 ;;
    --tokens) TOKENS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --types) TYPES=$2; shift 2 ;;
    --kernels) KERNELS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --batch) BATCH=1; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "engine_bench: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v jq >/dev/null || { echo "engine_bench: needs jq (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x "$BIN/strata" ] || { echo "engine_bench: build first (scripts/setup.sh)" >&2; exit 1; }
BENCH=""
. scripts/bench/lib_llama.sh
[ -z "$LLAMA" ] || BENCH=$(llama_tool "$LLAMA" llama-bench) || exit 1
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
FLAGS=$(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|avx512_vnni|avx_vnni)$' | tr '\n' ' ')

BASE=$MODELS/tinyllama-shape-bf16
mkdir -p "$MODELS"
. scripts/bench/lib_models.sh
tinyllama_shape "$BASE"
for t in $TYPES; do
  [ -f "$MODELS/tinyllama-shape-$t.gguf" ] || "$BIN/strata" quantize --model "$BASE" --type "$t" --out "$MODELS/tinyllama-shape-$t.gguf"
done

# Bytes of weights one decode step reads: every tensor but the embedding
# table (one row of it is read), from the file's own tensor table.
weight_bytes() { "$BIN/strata" plan --model "$1" --local 1 --dtype "$2" --json 2>/dev/null | jq 'map(.read_bytes) | add'; }
bandwidth() { "$BIN/strata-membw" --mib 1024 --passes 3 | jq .read_gb_per_s; }
# BOS + 127 copies of a one-piece word: 128 positions, as llama-bench's -p 128
# (a leading space would add a piece of its own: 129).
prompt="the$(printf ' the%.0s' $(seq 126))"

strata_run() {  # TYPE CAP: {decode, prefill} tokens/s
  local dtype=f32
  [ "$1" = bf16 ] && dtype=bf16
  local d p
  d=$(STRATA_KERNELS=$2 "$BIN/strata" generate --model "$MODELS/tinyllama-shape-$1.gguf" --local 1 --threads "$THREADS" \
      --dtype "$dtype" --prompt "The licence" --max-tokens "$TOKENS" --temperature 0 --json | jq .timings.decode_tokens_per_s)
  p=$(STRATA_KERNELS=$2 "$BIN/strata" generate --model "$MODELS/tinyllama-shape-$1.gguf" --local 1 --threads "$THREADS" \
      --dtype "$dtype" --prompt "$prompt" --max-tokens 1 --json |
      jq 'if (.prompt_tokens | length) == 128 then .timings.prompt_tokens_per_s
          else error("the prefill prompt is \(.prompt_tokens | length) tokens, not 128") end')
  echo "{\"decode\": $d, \"prefill\": $p}"
}
llama_run() {  # TYPE: {decode, prefill} tokens/s of llama-bench on the same file
  [ -n "$BENCH" ] || { echo null; return; }
  "$BENCH" -m "$MODELS/tinyllama-shape-$1.gguf" -p 128 -n "$TOKENS" -t "$THREADS" -mmp 0 -r 2 -o json 2>/dev/null |
    jq '{decode: (map(select(.n_gen > 0)) | .[0].avg_ts), prefill: (map(select(.n_prompt > 0)) | .[0].avg_ts)}'
}

# Multiply-adds of one token through the layers' matrices (prefill computes
# the head for the last position only), from the model's config.
layer_macs=$(jq '(.head_dim // (.hidden_size / .num_attention_heads)) as $hd |
  .num_hidden_layers * (.hidden_size * (.num_attention_heads + 2 * .num_key_value_heads) * $hd
                        + .num_attention_heads * $hd * .hidden_size + 3 * .hidden_size * .intermediate_size)' "$BASE/config.json")
peak=$("$BIN/strata-gemv-roof" --peak --threads "$THREADS" | jq .gflops)

rows="[]"
for r in $(seq "$REPEATS"); do
  for t in $TYPES; do
    dtype=f32
    [ "$t" = bf16 ] && dtype=bf16
    bytes=$(weight_bytes "$MODELS/tinyllama-shape-$t.gguf" "$dtype")
    for k in $KERNELS; do
      bw_a=$(bandwidth); s=$(strata_run "$t" "$k"); bw_b=$(bandwidth)
      l=null
      [ "$k" = "${KERNELS%% *}" ] && l=$(llama_run "$t")
      echo "repeat $r $t kernels=$k: strata $s llama.cpp $l bandwidth $bw_a/$bw_b GB/s" >&2
      rows=$(jq -c --arg t "$t" --arg k "$k" --argjson s "$s" --argjson l "$l" --argjson b "$bytes" \
        --argjson bw "$(jq -n "($bw_a + $bw_b) / 2")" '. + [{type: $t, kernels: $k, strata: $s, llama_cpp: $l,
          read_bytes_per_token: $b, bandwidth_gb_per_s: $bw}]' <<<"$rows")
    done
  done
done

# The fixed cost per token, on a model whose weights cost nothing.
TINY=$MODELS/hop-h64-l4
[ -f "$TINY/config.json" ] || "$BIN/strata" make-model --out "$TINY" --hidden 64 --layers 4 --heads 4 --kv-heads 4 \
  --intermediate 128 --vocab 256 --context 1024 --tokenizer-vocab 200 >/dev/null 2>&1
[ -f "$TINY-f32.gguf" ] || "$BIN/strata" quantize --model "$TINY" --type f32 --out "$TINY-f32.gguf" >/dev/null 2>&1
tiny_rows="[]"
for r in $(seq "$REPEATS"); do
  ts=$("$BIN/strata" generate --model "$TINY-f32.gguf" --local 1 --threads "$THREADS" --prompt "The licence" \
       --max-tokens 256 --temperature 0 --json | jq .timings.decode_tokens_per_s)
  tl=null
  [ -z "$BENCH" ] || tl=$("$BENCH" -m "$TINY-f32.gguf" -p 0 -n 256 -t "$THREADS" -mmp 0 -r 3 -o json 2>/dev/null |
                          jq '.[0].avg_ts')
  echo "repeat $r tiny model: strata $ts llama.cpp $tl tokens/s" >&2
  tiny_rows=$(jq -c --argjson s "$ts" --argjson l "$tl" '. + [{strata: $s, llama_cpp: $l}]' <<<"$tiny_rows")
done

# The continuous batch with Q4_K_M: concurrency 16 over 1, against the roof.
batch=null
if [ "$BATCH" = 1 ]; then
  command -v node >/dev/null || { echo "engine_bench: --batch needs node (scripts/setup.sh)" >&2; exit 1; }
  [ -f "$MODELS/tinyllama-shape-q4_k_m.gguf" ] ||
    "$BIN/strata" quantize --model "$BASE" --type q4_k_m --out "$MODELS/tinyllama-shape-q4_k_m.gguf"
  WORK=$(mktemp -d)
  . scripts/bench/lib_serve.sh
  trap 'stop; rm -rf "$WORK"' EXIT
  serve "$MODELS/tinyllama-shape-q4_k_m.gguf" 1 f32
  node scripts/bench/serve_load.mjs "$URL" 1 1 4 >/dev/null  # warm up
  c1=$(node scripts/bench/serve_load.mjs "$URL" 1 2 "$TOKENS")
  c16=$(node scripts/bench/serve_load.mjs "$URL" 16 32 "$TOKENS")
  stop
  roof=$("$BIN/strata-gemv-roof" --type q4_k --rows 2048 --cols 2048 --threads "$THREADS")
  batch=$(jq -n --argjson c1 "$c1" --argjson c16 "$c16" --argjson roof "$roof" '
    ($roof.batches[] | select(.batch == 16) | .ideal_speedup) as $ideal |
    {type: "q4_k_m", concurrency_1_tokens_per_s: $c1.tokens_per_s, concurrency_16_tokens_per_s: $c16.tokens_per_s,
     speedup_16_over_1: ($c16.tokens_per_s / $c1.tokens_per_s), roof_ideal_speedup_16: $ideal,
     speedup_of_roof: (($c16.tokens_per_s / $c1.tokens_per_s) / $ideal), failed: ($c1.failed + $c16.failed),
     kernel_path: $roof.path}')
  echo "batch: $batch" >&2
fi

jq -n --argjson rows "$rows" --arg cpu "$CPU" --arg flags "$FLAGS" --argjson threads "$THREADS" --argjson batch "$batch" \
  --argjson tiny "$tiny_rows" \
  --argjson macs "$layer_macs" --argjson peak "$peak" '
  def median: sort | .[(length / 2 | floor)];
  {cpu: $cpu, flags: $flags, threads: $threads, peak_gflops_f32: $peak,
   results: ($rows | group_by(.type + " " + .kernels) | map({
     type: .[0].type, kernels: .[0].kernels,
     read_bytes_per_token: .[0].read_bytes_per_token,
     bandwidth_gb_per_s: (map(.bandwidth_gb_per_s) | median),
     decode_tokens_per_s: (map(.strata.decode) | median),
     prefill_tokens_per_s: (map(.strata.prefill) | median),
     decode_efficiency: (map(.strata.decode * .read_bytes_per_token / (.bandwidth_gb_per_s * 1e9)) | median),
     llama_cpp_decode_tokens_per_s: (map(.llama_cpp.decode // empty) | if length > 0 then median else null end),
     llama_cpp_prefill_tokens_per_s: (map(.llama_cpp.prefill // empty) | if length > 0 then median else null end),
     decode_vs_llama_cpp_repeats: map(select(.llama_cpp != null) | .strata.decode / .llama_cpp.decode),
     prefill_vs_llama_cpp_repeats: map(select(.llama_cpp != null) | .strata.prefill / .llama_cpp.prefill)}
     | . + {prefill_gflops: (.prefill_tokens_per_s * 2 * $macs / 1e9),
            prefill_of_peak: (if $peak then .prefill_tokens_per_s * 2 * $macs / 1e9 / $peak else null end),
            llama_cpp_prefill_gflops: (if .llama_cpp_prefill_tokens_per_s then .llama_cpp_prefill_tokens_per_s * 2 * $macs / 1e9 else null end)}
     | . + {decode_vs_llama_cpp: (if .llama_cpp_decode_tokens_per_s then .decode_tokens_per_s / .llama_cpp_decode_tokens_per_s else null end),
            prefill_vs_llama_cpp: (if .llama_cpp_prefill_tokens_per_s then .prefill_tokens_per_s / .llama_cpp_prefill_tokens_per_s else null end),
            decode_vs_llama_cpp_paired: (.decode_vs_llama_cpp_repeats | if length > 0 then median else null end),
            prefill_vs_llama_cpp_paired: (.prefill_vs_llama_cpp_repeats | if length > 0 then median else null end)})),
   batch: $batch,
   per_token: ($tiny | {model: "hidden 64, 4 layers, vocabulary 256, f32", tokens: 256,
                strata_tokens_per_s: (map(.strata) | median),
                llama_cpp_tokens_per_s: (map(.llama_cpp // empty) | if length > 0 then median else null end)}
              | . + {vs_llama_cpp: (if .llama_cpp_tokens_per_s then .strata_tokens_per_s / .llama_cpp_tokens_per_s else null end)}),
   targets: {decode_efficiency: ">= 0.8", decode_vs_llama_cpp: ">= 1.0", prefill_vs_llama_cpp: ">= 1.0",
             per_token_vs_llama_cpp: ">= 1.0"}}'
