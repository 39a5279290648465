#!/usr/bin/env bash
# The newcomer's first command: installs everything (scripts/setup.sh), then
# runs one prompt as a 3-node pipeline on this machine, on the default model
# (models/kjv-5m, a small Llama trained by Strata on the King James Bible).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== strata generate --local 3: three strata-node processes on loopback, default model =="
build/bin/strata generate --local 3 --prompt "And God said" --max-tokens 64 --temperature 0.7 --top-p 0.9 --seed 1
