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
for tool in spm_train spm_encode; do
  command -v "$tool" >/dev/null || { echo "train: $tool not found; run scripts/setup.sh" >&2; exit 1; }
done
[ -x build/bin/strata-train ] || { echo "train: build first (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$WORK" "$OUT"

# 1. The text: one verse per line (tokenizer training), one chapter per line
#    (language-model training). Every 20th chapter is held out.
bash scripts/kjv_corpus.sh "$WORK"

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
train_loss=$(jq '.train_loss * 1000 | round / 1000' "$OUT/training.json")
heldout_loss=$(jq '.heldout_loss * 1000 | round / 1000' "$OUT/training.json")
params=$(jq .parameters "$OUT/training.json")
tokens=$(jq .tokens_seen "$OUT/training.json")
minutes=$(jq '.elapsed_s / 60 | round' "$OUT/training.json")
cat > "$OUT/README.md" <<CARD
# kjv-5m — Strata's default model

A small Llama-architecture language model trained by Strata's own code on the
King James Bible, so that a first run shows a multi-node pipeline writing real
text without any download.

- **Data**: the King James Version (1611), public domain, from Debian's
  bible-kjv-text package (read with the bible program from bible-kjv). One
  chapter per training document, BOS first; every 20th chapter (5%) held out.
- **Tokenizer**: SentencePiece BPE, $VOCAB pieces, trained on the verses.
- **Shape**: LlamaForCausalLM, hidden 256, 6 layers, 8 attention heads, 2 KV
  heads (grouped-query attention), MLP 704, context 256, tied embeddings,
  RoPE theta 10000, RMSNorm eps 1e-5: $params parameters, BF16 weights.
- **Training**: $STEPS steps of 16 x 128 tokens ($tokens tokens, about
  $((tokens / 989280)) passes over the training text), AdamW (lr 3e-3, betas
  0.9/0.95, weight decay 0.01, warm-up 100 steps then cosine to 10%), gradient
  clipping at 1.0, seed $SEED, $THREADS CPU threads, $minutes minutes. The
  forward pass is Strata's inference code (node/engine/llama_layers) under LibTorch
  autograd.
- **Loss** (cross-entropy per token, nats): train $train_loss, held-out $heldout_loss.

Reproduce (deterministic for the same seed and thread count):

    scripts/train_default_model.sh models/kjv-5m

It is a toy: it imitates the style and vocabulary of its corpus and knows
nothing else.
CARD
echo "wrote $OUT; its perplexity table: scripts/bench/perplexity.sh --model $OUT --card $OUT/README.md" >&2
