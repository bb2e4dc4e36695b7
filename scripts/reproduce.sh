#!/usr/bin/env bash
# Run one paper grid (its experiment config's variants x seeds 0,1,2) and draw it.
# Usage: scripts/reproduce.sh EXPERIMENT [cpu]   (cpu: the CPU twin, EXPERIMENT_cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
experiment=$1${2:+_$2}
out=multirun/$experiment
.venv/bin/loralab-train -m "experiment=$experiment" hydra.sweep.dir="$out"
.venv/bin/loralab-figures "$out"/*/ --out "figures/$experiment"
