#!/usr/bin/env bash
# Reproduce the paper's adamw runs (all variants x seeds 0,1,2) and draw them.
# Usage: scripts/reproduce_adamw.sh [cpu]   (cpu: the embedded model on the demo quiz)
set -euo pipefail
cd "$(dirname "$0")/.."
suffix=${1:+_$1}
out=multirun/paper_adamw${suffix}
.venv/bin/loralab-train -m experiment=paper_adamw${suffix} hydra.sweep.dir="$out"
.venv/bin/loralab-figures "$out"/*/ --out "figures/paper_adamw${suffix}"
