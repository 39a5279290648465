#!/usr/bin/env bash
# Trains Strata's default model on the King James Bible (Debian's
# bible-kjv-text, public domain) with Strata's own layer code, and writes it
# to models/kjv-5m in the Hugging Face layout. Deterministic for a given seed
# (SEED, default 1). About 45 minutes on 2 CPU cores.
#   usage: scripts/train_default_model.sh [OUT_DIR]     (env: STEPS, SEED, THREADS)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/kjv-5m}
WORK=build/kjv-data
STEPS=${STEPS:-1800}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
VOCAB=3000
for tool in bible spm_train spm_encode; do
  command -v "$tool" >/dev/null || { echo "train: $tool not found; run scripts/setup.sh" >&2; exit 1; }
done
[ -x build/bin/strata-train ] || { echo "train: build first (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$WORK" "$OUT"

# 1. The text: one verse per line (tokenizer training), one chapter per line
#    (language-model training). Every 20th chapter is held out.
bible -l100000 "Gen1:1-Rev22:21" | awk -v work="$WORK" '
  /^  *[0-9]+ / { sub(/^ *[0-9]+ /, ""); print > (work "/verses.txt"); chapter = chapter (chapter == "" ? "" : " ") $0; next }
  /^[0-9A-Z][A-Za-z ]* [0-9]+$/ { flush(); next }
  function flush() {
    if (chapter == "") return
    n++; print chapter > (work "/" (n % 20 == 10 ? "heldout" : "train") ".txt"); chapter = ""
  }
  END { flush() }'
echo "corpus: $(wc -l < "$WORK/verses.txt") verses, $(wc -w < "$WORK/train.txt") train words, $(wc -w < "$WORK/heldout.txt") held-out words" >&2

# 2. The tokenizer: SentencePiece BPE over the training verses.
spm_train --input="$WORK/verses.txt" --model_prefix="$WORK/tokenizer" --model_type=bpe --vocab_size=$VOCAB \
  --character_coverage=1.0 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1 \
  --input_sentence_size=0 --shuffle_input_sentence=false --minloglevel=2 2>/dev/null
spm_encode --model="$WORK/tokenizer.model" --output_format=id < "$WORK/train.txt" > "$WORK/train.ids"
spm_encode --model="$WORK/tokenizer.model" --output_format=id < "$WORK/heldout.txt" > "$WORK/heldout.ids"

# 3. The model: the engine's own layers under LibTorch autograd.
build/bin/strata-train --train "$WORK/train.ids" --heldout "$WORK/heldout.ids" --out "$OUT" --vocab $VOCAB \
  --hidden 256 --layers 6 --heads 8 --kv-heads 2 --intermediate 704 --context 256 --seq 128 --batch 16 \
  --steps "$STEPS" --seed "$SEED" --threads "$THREADS" | tee "$WORK/progress.jsonl"
cp "$WORK/tokenizer.model" "$OUT/tokenizer.model"
printf '{\n  "add_bos_token": true,\n  "bos_token": "<s>",\n  "eos_token": "</s>",\n  "unk_token": "<unk>"\n}\n' > "$OUT/tokenizer_config.json"
echo "wrote $OUT" >&2
