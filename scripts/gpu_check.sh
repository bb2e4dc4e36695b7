#!/usr/bin/env bash
# The GPU checks, in one go: every adapter x optimizer trained in bf16 through the real
# Lightning Trainer plus the CUDA-vs-CPU math tests (pytest -m cuda), then the training-step
# benchmark in bf16 on the GPU (also when a test failed; the exit status reports both), then
# the per-step kernel counts (benchmarks.profile_step: multi-tensor vs per-tensor optimizer).
#   scripts/gpu_check.sh [OUT_DIR] [BENCH_BUDGET_S]     (defaults: benchmarks/results, 200)
# The llama_1b benchmark model needs about 90 GB (the looped reference): it is left out on a
# GPU with less memory.
# Runs from the repository root with the project importable, or with PYTHONPATH pointing at
# src/ plus any missing pure-Python dependencies (hydra-core, omegaconf, antlr4) in .gpu_site/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
budget=${2:-200}
export PYTHONPATH="$PWD/src:$PWD/.gpu_site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers, lightning; print("torch", torch.__version__, "| transformers", transformers.__version__, "| lightning", lightning.__version__)'
set +e
python3 -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider --durations=5 2>&1 | tee "$out/gpu_tests.log"
tests=${PIPESTATUS[0]}
memory_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
models=mid_llama
[ "$memory_mib" -ge 100000 ] && models=mid_llama,llama_1b
python3 -m benchmarks.train_step --device cuda --models "$models" \
    --budget-s "$budget" --out "$out" 2>&1 | tee "$out/gpu_bench.log"
bench=${PIPESTATUS[0]}
for model in ${models//,/ }; do
    python3 -m benchmarks.profile_step --device cuda --model "$model" --setups default,loop \
        --out "$out" 2>&1 | tee "$out/gpu_profile_$model.log" | grep "kernels ("
done
echo "gpu_check: tests exit $tests, benchmark exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
