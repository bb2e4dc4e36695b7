#!/usr/bin/env bash
# Reproduce MoSLoRA's commonsense comparison (LoRA vs MoSLoRA x seeds 0,1,2) and draw it.
# Usage: scripts/reproduce_moslora.sh [cpu]   (cpu: the embedded model on the demo quiz)
set -euo pipefail
cd "$(dirname "$0")/.."
suffix=${1:+_$1}
out=multirun/moslora_commonsense${suffix}
.venv/bin/loralab-train -m experiment=moslora_commonsense${suffix} hydra.sweep.dir="$out"
.venv/bin/loralab-figures "$out"/*/ --out "figures/moslora_commonsense${suffix}"
