#!/usr/bin/env bash
# Run one paper grid (its experiment config's variants x seeds 0,1,2) and draw it.
# Usage: [JOBS=N] scripts/reproduce.sh EXPERIMENT [cpu] [OVERRIDE ...]
#   cpu: the CPU twin (EXPERIMENT_cpu); OVERRIDEs go to every run (e.g. seed=0 trainer.max_steps=50).
# Runs land in $RUNS_DIR (default multirun/EXPERIMENT), figures in $FIGURES_DIR (figures/EXPERIMENT).
# JOBS=N (CPU runs) splits the grid's optimizers over N multiruns at once, each with
# nproc/N threads: on 2 cores, two one-thread runs get more done than one two-thread run.
# Start from an empty RUNS_DIR: the figures read every run folder in it.
set -euo pipefail
cd "$(dirname "$0")/.."
experiment=$1
shift
if [ "${1:-}" = cpu ]; then
    experiment=${experiment}_cpu
    shift
fi
out=${RUNS_DIR:-multirun/$experiment}
mkdir -p "$(dirname "$out")"
train=.venv/bin/loralab-train
jobs=${JOBS:-1}
if [ "$jobs" -le 1 ]; then
    $train -m "experiment=$experiment" hydra.sweep.dir="$out" "$@"
else
    for override in "$@"; do
        case $override in optimizer=*)
            echo "JOBS=$jobs splits the optimizers itself: drop '$override' or use JOBS=1" >&2
            exit 2 ;;
        esac
    done
    grid=$($train "experiment=$experiment" --cfg hydra -p hydra.sweeper.params.optimizer \
        2>/dev/null || true)
    [ -n "$grid" ] || { echo "$experiment has no optimizer grid to split: use JOBS=1" >&2; exit 2; }
    IFS=, read -r -a variants <<<"$grid"
    threads=$(($(nproc) / jobs > 0 ? $(nproc) / jobs : 1))
    pids=()
    for ((j = 0; j < jobs; j++)); do
        share=()
        for ((i = j; i < ${#variants[@]}; i += jobs)); do share+=("${variants[i]}"); done
        [ ${#share[@]} -gt 0 ] || continue
        list=$(IFS=,; echo "${share[*]}")
        OMP_NUM_THREADS=$threads $train -m "experiment=$experiment" "optimizer=$list" \
            hydra.sweep.dir="$out" "$@" >"$out.job$j.log" 2>&1 &
        pids+=($!)
        echo "job $j: optimizer=$list ($threads threads), log $out.job$j.log"
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    [ $status -eq 0 ] || { echo "a job failed: see $out.job*.log" >&2; exit 1; }
fi
.venv/bin/loralab-figures "$out"/*/ --out "${FIGURES_DIR:-figures/$experiment}" --smooth 10
