"""Speed and memory benchmarks (docs/performance.md: its method notes and measurements).

One command per benchmark; each prints a table, writes JSON under `benchmarks/results/`
(gitignored) and measures ratios inside one process, the variants interleaved, never absolute
times across runs:

    python -m benchmarks.train_step            # full run (under 10 minutes on 2 CPU cores)
    python -m benchmarks.train_step --quick    # smoke size (well under a minute)
    python -m benchmarks.eval_scoring          # text-form vs label-form scoring (a few minutes)

Modules: `models` (the benchmarked base models), `looped` (the per-expert MoE-LoRA that users
have today), `variants` (every variant built on one shared frozen base), `measure`
(interleaved timing, peak memory, the CPU), `report` (targets, table, JSON, plot), `train_step`
(CLI), `eval_scoring` (CLI: whole-option scoring against the label form and the old path).
"""
