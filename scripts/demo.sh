#!/usr/bin/env bash
# The newcomer's first command: installs everything (scripts/setup.sh), then
# runs one prompt as a 3-node pipeline on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MODEL=${STRATA_DEMO_MODEL:-build/demo-model}
if [ ! -f "$MODEL/config.json" ]; then
  # A small random-weight Llama (GQA, 8 layers) until a trained default model ships.
  build/bin/strata make-model --out "$MODEL" --hidden 256 --layers 8 --heads 8 --kv-heads 2 \
    --intermediate 688 --vocab 2000 --context 512 --dtype bf16 --tokenizer-vocab 1000 2>/dev/null
fi
echo "== strata generate --local 3 (three strata-node processes on loopback) =="
build/bin/strata generate --model "$MODEL" --local 3 --prompt "The licence grants you" \
  --max-tokens 48 --temperature 0.8 --top-p 0.95 --seed 1
