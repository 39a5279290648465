#!/usr/bin/env bash
# The default model's text: the King James Bible from Debian's
# bible-kjv-text, one verse per line (WORK/verses.txt, for the tokenizer)
# and one chapter per line, every 20th chapter held out (WORK/train.txt,
# WORK/heldout.txt). Used by train_default_model.sh and the model card's
# perplexity (scripts/bench/perplexity.sh).
#   usage: scripts/kjv_corpus.sh WORK_DIR
set -euo pipefail
WORK=${1:?usage: kjv_corpus.sh WORK_DIR}
command -v bible >/dev/null || { echo "kjv_corpus: bible not found; run scripts/setup.sh" >&2; exit 1; }
mkdir -p "$WORK"
rm -f "$WORK/verses.txt" "$WORK/train.txt" "$WORK/heldout.txt"
bible -l100000 "Gen1:1-Rev22:21" | awk -v work="$WORK" '
  /^  *[0-9]+ / { sub(/^ *[0-9]+ /, ""); print > (work "/verses.txt"); chapter = chapter (chapter == "" ? "" : " ") $0; next }
  /^[0-9A-Z][A-Za-z ]* [0-9]+$/ { flush(); next }
  function flush() {
    if (chapter == "") return
    n++; print chapter > (work "/" (n % 20 == 10 ? "heldout" : "train") ".txt"); chapter = ""
  }
  END { flush() }'
echo "corpus: $(wc -l < "$WORK/verses.txt") verses, $(wc -w < "$WORK/train.txt") train words, $(wc -w < "$WORK/heldout.txt") held-out words" >&2
