"""Training-step speed and memory: MoE-LoRA vs LoRA vs PEFT vs the per-expert loop.

    python -m benchmarks.train_step                 # full run, < 10 minutes on 2 CPU cores
    python -m benchmarks.train_step --quick         # smoke size, well under a minute
    python -m benchmarks.train_step --device cuda   # bf16 on a GPU (the default when present)

For each model (a mid-size random-init Llama, batch 4 x 256; the embedded SmolLM2-135M, batch
1 x 256) every variant of `variants.STEP_VARIANTS` is built on one shared frozen base, then
timed in interleaved rounds (`measure.interleave`) until the target ratios are stable; its peak
memory comes from one extra untimed step (`measure.step_peak_bytes`). Then the optimizer step
alone (AdamW vs RAdamW, LoRA+ and LoRA-RITE, SGD vs RSGD over the whole model's
MoE-LoRA(20,10,4) parameters; `benchmarks.optimizer_step` runs this part alone), and a
scaling sweep (experts 1-50 at rank 4, rank 4-32 at 8 experts; ours vs looped) on a 2-layer
model with the mid-size Llama's layer shapes. Prints one table, writes
`<out>/train_step-<device>[-quick].json` and `<out>/train_step_scaling-<device>[-quick].png`.

CPU threads: one by default. On a 2-core machine shared with other processes, two OpenMP
threads made element-wise kernels 10-400x slower (a thread descheduled mid-kernel stalls the
other at the barrier), which drowned every ratio in noise; one thread is stable and leaves the
second core to the other work. Use `--threads 2` on an idle machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

from benchmarks import measure, report
from benchmarks.models import ModelSpec, model_specs, sweep_spec
from benchmarks.variants import (
    LR,
    ROUTER_LR,
    STEP_VARIANTS,
    Variant,
    build,
    make_step,
    static_bytes,
)
from loralab.adapters import set_gate_rescale
from loralab.cli.precision import resolve_device
from loralab.optim import build_optimizer

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
SWEEP_EXPERTS = (1, 4, 8, 20, 50)
SWEEP_RANKS = (4, 8, 16, 32)
SWEEP_FIXED_EXPERTS, SWEEP_FIXED_RANK = 8, 4
OPTIMIZERS = ("adamw", "radamw", "loraplus", "lorarite", "sgd", "rsgd")
# Each part's share of what is left of --budget-s when it starts; it spends its share on
# building, warm-up and memory steps first, then on timed rounds (at least one).
BUDGET_WEIGHTS = {
    "mid_llama": 0.56,
    "smollm2_135m": 0.24,
    "llama_1b": 0.5,
    "tiny": 0.05,
    "sweep": 0.2,
}
OPTIMIZER_BUDGET_S = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small smoke sizes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="auto: float32 on CPU, bfloat16 on CUDA",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument(
        "--clock",
        default="auto",
        choices=("auto", "wall", "cpu"),
        help="auto: cpu (process CPU time) on CPU with one thread, else wall",
    )
    parser.add_argument(
        "--models",
        default="mid_llama,smollm2_135m",
        help="comma list of mid_llama, smollm2_135m, tiny, llama_1b (GPU scale; full size only)",
    )
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--sweep-experts", default=",".join(map(str, SWEEP_EXPERTS)))
    parser.add_argument("--sweep-ranks", default=",".join(map(str, SWEEP_RANKS)))
    parser.add_argument("--compile", action="store_true", help="torch.compile every variant")
    parser.add_argument("--min-rounds", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--max-rounds", type=int, default=None, help="default 12 (quick: 2)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed full-size steps per variant after the memory step (default 1, quick 0)",
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=0.02,
        help="stable when no target ratio moves by this much in a round",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall time the whole run aims at (default 520, quick 40); rounds "
        "stop early when one more would overrun it",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for key, full, quick in (
        ("min_rounds", 3, 2),
        ("max_rounds", 12, 2),
        ("warmup", 1, 0),
        ("budget_s", 520.0, 40.0),
    ):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.min_rounds = min(args.min_rounds, args.max_rounds)
    args.models = [m for m in args.models.split(",") if m]
    args.sweep_experts = [int(v) for v in args.sweep_experts.split(",") if v]
    args.sweep_ranks = [int(v) for v in args.sweep_ranks.split(",") if v]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    began = time.perf_counter()
    _quiet()
    device = resolve_device(args.device)
    dtype = {
        "auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
    }[args.dtype]
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.clock == "auto":
        args.clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures host CPU time: use --clock wall on a GPU")
    specs = model_specs(args.quick)
    unknown = sorted(set(args.models) - set(specs))
    if unknown:
        raise SystemExit(f"unknown --models {unknown}; known: {', '.join(specs)}")

    results = {"meta": _meta(args, device, dtype), "models": {}, "sweep": None}
    parts = [*args.models, *(["sweep"] if args.sweep else [])]
    deadline = began + args.budget_s
    for index, part in enumerate(parts):
        weights = [BUDGET_WEIGHTS.get(name, 0.1) for name in parts[index:]]
        part_deadline = time.perf_counter() + max(
            0.0, (deadline - time.perf_counter()) * weights[0] / sum(weights)
        )
        if part == "sweep":
            results["sweep"] = bench_sweep(
                sweep_spec(args.quick), args, device, dtype, part_deadline
            )
        else:
            results["models"][part] = bench_model(specs[part], args, device, dtype, part_deadline)
    results["targets"] = [
        row | {"model": name}
        for name, model in results["models"].items()
        for row in model["ratios"]
        if row["pass"] is not None
    ]
    if results["sweep"]:
        results["targets"] += [
            row | {"model": "sweep"}
            for row in results["sweep"]["ratios"]
            if row["pass"] is not None
        ]
    results["meta"]["load_average_end"] = measure.load_average()
    results["elapsed_s"] = time.perf_counter() - began

    suffix = f"{device.type}{'-quick' if args.quick else ''}"
    json_path = args.out / f"train_step-{suffix}.json"
    results["json"] = str(json_path)
    if results["sweep"]:
        plot_path = args.out / f"train_step_scaling-{suffix}.png"
        report.plot_sweep(results["sweep"], plot_path)
        results["plot"] = str(plot_path)
    report.write_json(results, json_path)
    print(report.render(results))
    print(f"wrote {json_path}" + (f" and {results['plot']}" if results.get("plot") else ""))
    return results


# ------------------------------------------------------------------------------ the two parts


def bench_model(spec: ModelSpec, args, device, dtype, deadline: float) -> dict:
    _log(f"{spec.name}: building {len(STEP_VARIANTS)} variants")
    base = spec.build(device, dtype)
    ids = spec.tokens(args.seed, device)
    optimizer_budget = min(OPTIMIZER_BUDGET_S, 0.05 * (deadline - time.perf_counter()))
    measured = _measure(
        STEP_VARIANTS,
        base,
        ids,
        args,
        device,
        deadline - optimizer_budget,
        report.tracked(report.STEP_RATIOS),
        args.max_rounds,
    )
    medians = {name: entry["median_s"] for name, entry in measured["variants"].items()}
    peaks = {name: entry["peak_bytes"] for name, entry in measured["variants"].items()}
    ratios = report.ratio_rows(report.STEP_RATIOS, medians, peaks)
    optimizer = bench_optimizers(measured.pop("built")["moe_lora"], args, device, optimizer_budget)
    ratios += report.ratio_rows(report.OPTIMIZER_RATIOS, optimizer["median_s"])
    del base
    gc.collect()
    return {"spec": spec.describe(), **measured, "optimizer": optimizer, "ratios": ratios}


def bench_optimizers(built, args, device, budget_s: float, names=OPTIMIZERS) -> dict:
    """The optimizer step alone over one model's adapter parameters, each optimizer of `names`
    (none gate-rescaled: rescaling changes the forward, not the step) with its own state."""
    model = built.model
    generator = torch.Generator().manual_seed(args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator).to(param.device, param.dtype)
    set_gate_rescale(model, False)  # the shared model may come from the "g" variant's last step
    optimizers = {
        name: build_optimizer(model, {"name": name, "lr": LR, "router_lr": ROUTER_LR})[0]
        for name in names
    }
    steps = {name: opt.step for name, opt in optimizers.items()}
    for step in steps.values():  # allocates the moments
        step()
    track = [
        (r.numerator, r.denominator)
        for r in report.OPTIMIZER_RATIOS
        if {r.numerator, r.denominator} <= set(names)
    ]
    timing = measure.interleave(
        steps,
        track=track,
        min_rounds=5,
        max_rounds=5 if args.quick else 60,
        budget_s=budget_s,
        tol=args.tol,
        clock=args.clock,
        sync=measure.synchronizer(device),
    )
    return {
        "params": sum(p.numel() for p in params),
        "median_s": {name: timing.median(name) for name in steps},
        "rounds": timing.rounds,
        "stopped": timing.stopped,
    }


def bench_sweep(spec: ModelSpec, args, device, dtype, deadline: float) -> dict:
    points = {}
    for experts in args.sweep_experts:
        points[(experts, SWEEP_FIXED_RANK)] = "experts"
    for rank in args.sweep_ranks:
        key = (SWEEP_FIXED_EXPERTS, rank)
        points[key] = "both" if key in points else "rank"
    variants = [Variant("frozen", "frozen base", "frozen")]
    for experts, rank in points:
        top_k = max(1, experts // 2)
        for kind in ("ours", "looped"):
            variants.append(
                Variant(
                    f"{kind}_e{experts}_r{rank}",
                    f"{kind} ({experts},{top_k},{rank})",
                    kind,
                    rank=rank,
                    experts=experts,
                    top_k=top_k,
                )
            )
    _log(f"sweep: building {len(variants)} variants")
    first, last = min(points), max(points, key=lambda p: (p[0], -p[1]))
    track = []
    for kind in ("ours", "looped"):
        track.append((f"{kind}_e{last[0]}_r{last[1]}", f"{kind}_e{first[0]}_r{first[1]}"))
    base = spec.build(device, dtype)
    ids = spec.tokens(args.seed, device)
    measured = _measure(variants, base, ids, args, device, deadline, track, min(args.max_rounds, 6))
    measured.pop("built")
    entries = measured["variants"]
    rows = []
    for (experts, rank), axis in points.items():
        ours, looped = entries[f"ours_e{experts}_r{rank}"], entries[f"looped_e{experts}_r{rank}"]
        rows.append(
            {
                "experts": experts,
                "rank": rank,
                "top_k": max(1, experts // 2),
                "axis": axis,
                "ours_s": ours["median_s"],
                "looped_s": looped["median_s"],
                "ours_peak_bytes": ours["peak_bytes"],
                "looped_peak_bytes": looped["peak_bytes"],
            }
        )
    slopes = {}
    for axis in ("experts", "rank"):
        chosen = sorted((p for p in rows if p["axis"] in (axis, "both")), key=lambda p: p[axis])
        if len(chosen) >= 2:
            xs = [p[axis] for p in chosen]
            slopes[axis] = {
                kind: report.fit_slopes(xs, [p[f"{kind}_s"] for p in chosen])
                for kind in ("ours", "looped")
            }
    ratios = []
    if "experts" in slopes:
        limit = report.SWEEP_ELASTICITY_LIMIT
        value = slopes["experts"]["ours"]["loglog"]
        ratios.append(
            report.Ratio("sweep: ours log-log slope vs experts", "", "", limit).row(value)
            | {"metric": "slope"}
        )
        ratios.append(
            report.Ratio("sweep: looped log-log slope vs experts", "", "").row(
                slopes["experts"]["looped"]["loglog"]
            )
            | {"metric": "slope"}
        )
        ratios.append(
            report.Ratio("sweep: ms per expert, ours / looped", "", "").row(
                slopes["experts"]["ours"]["linear_s_per_unit"]
                / slopes["experts"]["looped"]["linear_s_per_unit"]
            )
            | {"metric": "slope"}
        )
    del base
    gc.collect()
    return {
        "spec": spec.describe(),
        "device": results_device(device, dtype),
        "frozen_s": entries["frozen"]["median_s"],
        "timing": measured["timing"],
        "points": rows,
        "slopes": slopes,
        "ratios": ratios,
        "variants": entries,
    }


# ----------------------------------------------------------------------------------- helpers


def _measure(variants, base, ids, args, device, deadline, track, max_rounds) -> dict:
    """Build every variant, warm it up, measure its peak memory, then time them interleaved."""
    builts = {}
    for variant in variants:
        shared = builts.get(variant.shares) if variant.shares else None
        builts[variant.name] = build(variant, base, args.seed, shared)
    if args.compile:
        for built in builts.values():
            built.forward = torch.compile(built.model)
    steps = {name: make_step(built, ids, args.seed) for name, built in builts.items()}
    warm_ids = ids[:1, : min(16, ids.shape[1])]
    entries = {}
    for name, built in builts.items():
        make_step(built, warm_ids, args.seed)()  # optimizer state, lazy buffers
        held = static_bytes(built)
        step_peak = measure.step_peak_bytes(steps[name], device)
        entries[name] = {
            **built.variant.describe(),
            "trainable": built.trainable,
            "static_bytes": held,
            "step_peak_bytes": step_peak,
            "peak_bytes": held + step_peak,
        }
    for _ in range(args.warmup):  # the allocator and caches settle at the full size
        for step in steps.values():
            step()
    budget_s = deadline - time.perf_counter()
    _log(f"  timing {len(steps)} variants ({budget_s:.0f} s left for rounds)")
    timing = measure.interleave(
        steps,
        track=track,
        min_rounds=args.min_rounds,
        max_rounds=max_rounds,
        budget_s=budget_s,
        tol=args.tol,
        clock=args.clock,
        sync=measure.synchronizer(device),
        log=_log,
    )
    for name, entry in entries.items():
        entry |= {
            "median_s": timing.median(name),
            "spread": timing.spread(name),
            "times_s": timing.times[name],
            "wall_s": timing.wall[name],
            "cpu_s": timing.cpu[name],
        }
    return {
        "variants": entries,
        "timing": {
            "rounds": timing.rounds,
            "stopped": timing.stopped,
            "elapsed_s": timing.elapsed_s,
            "clock": timing.clock,
        },
        "built": builts,
    }


def results_device(device, dtype) -> str:
    return f"{_device_name(device)} ({str(dtype).removeprefix('torch.')})"


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else measure.cpu_name()


def _meta(args, device, dtype) -> dict:
    return {
        "device": device.type,
        "device_name": _device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "quick": args.quick,
        "compile": args.compile,
        "seed": args.seed,
        "clock": args.clock,
        "argv": sys.argv[1:],
        "budget_s": args.budget_s,
        "load_average_start": measure.load_average(),
        "memory_method": (
            "torch.cuda.max_memory_allocated over one step, plus what is held before it"
            if device.type == "cuda"
            else "held tensors (weights, adapters, optimizer state) + the step's highest net "
            "allocation from torch profiler memory events"
        ),
    }


def _quiet() -> None:
    """No weight-loading progress bars or PEFT's deprecation warning in the printed table."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
