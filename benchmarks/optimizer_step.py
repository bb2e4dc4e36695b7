"""The optimizer step alone: LoRA+, LoRA-RITE and the Riemannian variants beside AdamW.

    python -m benchmarks.optimizer_step             # mid-size Llama and SmolLM2-135M, one thread
    python -m benchmarks.optimizer_step --quick     # smoke size, seconds

For each model (`benchmarks.models`: the mid-size random-init Llama, the embedded SmolLM2-135M)
and each adapter setup (MoE-LoRA(20,10,4) and LoRA r=16, alpha 16, on q/k/v/o), every optimizer
of --optimizers is built over the SAME adapters, each with its own state
(`train_step.bench_optimizers`): every adapter parameter gets one fixed random gradient, each
optimizer takes one untimed step (its state allocated), then the steps are timed interleaved in
one process (`measure.interleave`), so each ratio to AdamW is measured under the same load. No
forward or backward runs: this is `optimizer.step()` alone (the lr is the paper's 1e-5, so the
weights barely move between calls). Prints one table per setup and writes
`<out>/optimizer_step-<device>[-quick].json`.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks import measure, report
from benchmarks.models import model_specs
from benchmarks.train_step import OPTIMIZERS, _meta, _quiet, bench_optimizers
from benchmarks.variants import Variant, build
from loralab.cli.precision import resolve_device

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
SETUPS = (
    Variant("moe_lora", "MoE-LoRA(20,10,4)", "ours", rank=4, experts=20, top_k=10),
    Variant("lora_r16", "LoRA r=16", "ours", rank=16),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.optimizer_step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small smoke sizes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"))
    parser.add_argument("--models", default="mid_llama,smollm2_135m")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument(
        "--budget-s", type=float, default=None, help="seconds of timed rounds per setup"
    )
    parser.add_argument("--tol", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s or (5.0 if args.quick else 60.0)
    args.models = [m for m in args.models.split(",") if m]
    args.optimizers = [o for o in args.optimizers.split(",") if o]
    if "adamw" not in args.optimizers:
        parser.error("--optimizers must include adamw: every ratio is against it")
    args.compile = False  # for train_step._meta
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    _quiet()
    device = resolve_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.clock == "auto":
        args.clock = "cpu" if device.type == "cpu" and args.threads == 1 else "wall"
    specs = model_specs(args.quick)
    results = {"meta": _meta(args, device, dtype), "setups": {}}
    # bench_optimizers reads these settings only (at most 60 rounds, 5 with --quick)
    timing = SimpleNamespace(seed=args.seed, quick=args.quick, tol=args.tol, clock=args.clock)
    for model_name in args.models:
        base = specs[model_name].build(device, dtype)
        for setup in SETUPS:
            built = build(setup, base, args.seed)
            began = time.perf_counter()
            measured = bench_optimizers(built, timing, device, args.budget_s, args.optimizers)
            medians = measured["median_s"]
            results["setups"][f"{model_name}/{setup.name}"] = measured | {
                "model": model_name,
                "adapter": setup.label,
                "x_adamw": {name: medians[name] / medians["adamw"] for name in medians},
                "elapsed_s": time.perf_counter() - began,
            }
            del built
            gc.collect()
        del base
        gc.collect()
    results["meta"]["load_average_end"] = measure.load_average()
    path = args.out / f"optimizer_step-{device.type}{'-quick' if args.quick else ''}.json"
    results["json"] = str(path)
    report.write_json(results, path)
    print(render(results))
    print(f"wrote {path}")
    return results


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"optimizer step alone on {meta['device_name']} ({meta['device']}, {meta['dtype']}, "
        f"{meta['threads']} thread(s), {report.CLOCK_WORDS[meta['clock']]}); load average "
        f"{meta['load_average_start']} -> {meta['load_average_end']}"
    ]
    for key, setup in results["setups"].items():
        lines += [
            "",
            f"== {key}: {setup['adapter']}, {setup['params']:,} adapter parameters; "
            f"{setup['rounds']} rounds ({setup['stopped']}) ==",
            f"{'optimizer':<12}{'step ms':>10}{'x AdamW':>10}",
        ]
        for name, median in setup["median_s"].items():
            lines.append(f"{name:<12}{median * 1e3:>10.2f}{setup['x_adamw'][name]:>10.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
