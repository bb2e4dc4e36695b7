"""Where a training step's time goes: kernel counts and the costliest kernels, per variant.

    python -m benchmarks.profile_step --device cuda --model llama_1b
    python -m benchmarks.profile_step --device cpu --model tiny --variants lora_r4,moe_lora

For each variant of `variants.STEP_VARIANTS` named in --variants and each setup in --setups
(`default`; `foreach` / `loop`: the optimizer's multi-tensor / one-tensor-at-a-time updates,
`optimizer.foreach=true` / `false`, whose default is multi-tensor on GPUs and the loop on CPU;
`compiled`: the whole model under torch.compile, as `train_step --compile` does), the
step is warmed up, timed (median of --steps steps; wall clock after a device synchronise) and
then profiled for one step with torch.profiler: the number of device kernels (on CPU: of
operators) in the step, the number inside `optimizer.step()`, and the --top costliest kernels by
total time. A GPU step of tens of milliseconds is bound by launches, so kernel counts are what
the fused paths are meant to cut. Writes `<out>/profile_step-<device>-<model>.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from benchmarks import measure
from benchmarks.models import model_specs
from benchmarks.variants import LR, ROUTER_LR, STEP_VARIANTS, Built, build, make_step
from loralab.cli.precision import resolve_device
from loralab.optim import build_optimizer

SETUPS = ("default", "foreach", "loop", "compiled")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--model", default="mid_llama", help="a model of benchmarks.models")
    parser.add_argument(
        "--variants", default="frozen,lora_r4,peft_lora_r4,moe_lora,moe_lora_g,moe_lora_radamw"
    )
    parser.add_argument("--setups", default="default,loop", help=f"comma list of {SETUPS}")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=12, help="costliest kernels listed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    args.setups = [s for s in args.setups.split(",") if s]
    known = {v.name: v for v in STEP_VARIANTS}
    for name in args.variants:
        if name not in known:
            parser.error(f"unknown variant {name!r}; known: {', '.join(known)}")
    for setup in args.setups:
        if setup not in SETUPS:
            parser.error(f"unknown setup {setup!r}; known: {', '.join(SETUPS)}")
    args.variants = [known[name] for name in args.variants]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    spec = model_specs(quick=False)[args.model]
    base = spec.build(device, dtype)
    ids = spec.tokens(0, device)
    rows = []
    for setup in args.setups:
        for variant in args.variants:
            if setup in ("foreach", "loop") and variant.kind != "ours":
                continue  # not our optimizer: nothing to switch
            rows.append(profile_variant(variant, setup, base, ids, device, args))
            print(_row_line(rows[-1]), flush=True)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "model": spec.describe(),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"profile_step-{device.type}-{args.model}.json"
    path.write_text(json.dumps(result, indent=1))
    print(render(result, args.top))
    print(f"wrote {path}")
    return result


def profile_variant(variant, setup, base, ids, device, args) -> dict:
    if variant.shares:  # build the model it shares, then give it this variant's optimizer
        owner = next(v for v in STEP_VARIANTS if v.name == variant.shares)
        built = build(variant, base, 0, build(owner, base, 0))
    else:
        built = build(variant, base, 0)
    if setup in ("foreach", "loop"):
        foreach = setup == "foreach"
        config = {"name": variant.optimizer, "lr": LR, "router_lr": ROUTER_LR, "foreach": foreach}
        optimizer, _ = build_optimizer(built.model, config)
        built = Built(variant, built.model, optimizer, built.trainable, built.gate_rescale)
    if setup == "compiled":
        built.forward = torch.compile(built.model)
    step = make_step(built, ids, 0)
    optimizer = built.optimizer
    if optimizer is not None:  # label the optimizer's share of the kernels
        raw_step = optimizer.step

        def labelled_step(*a, **k):
            with record_function("optimizer.step"):
                return raw_step(*a, **k)

        optimizer.step = labelled_step
    sync = measure.synchronizer(device)
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        began = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - began)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        sync()
    kernels, in_optimizer = _kernels(prof, device)
    row = {
        "variant": variant.name,
        "label": variant.label,
        "setup": setup,
        "median_ms": 1e3 * statistics.median(times),
        "kernels": len(kernels),
        "optimizer_kernels": in_optimizer,
        "kernel_ms": 1e-3 * sum(duration for _, duration in kernels),
        "top": _top(kernels, args.top),
    }
    del built, step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def _kernels(prof, device) -> tuple[list[tuple[str, float]], int]:
    """(name, duration in us) of every device kernel (CPU: every outermost aten operator) of
    the profiled step, and how many of them were launched inside optimizer.step()."""
    events = [e for e in prof.events() if e.name != "optimizer.step"]
    windows = [
        (e.time_range.start, e.time_range.end) for e in prof.events() if e.name == "optimizer.step"
    ]
    if device.type == "cuda":
        # kernels, copies and memsets; not the profiler's own annotations ("...#...step")
        chosen = [e for e in events if e.device_type.name == "CUDA" and "#" not in e.name]
        in_optimizer = sum(
            1
            for e in events
            if e.device_type.name == "CPU"
            and "LaunchKernel" in e.name
            and any(start <= e.time_range.start <= end for start, end in windows)
        )
    else:
        chosen = [
            e
            for e in events
            if e.device_type.name == "CPU" and e.name.startswith("aten::") and _outermost(e)
        ]
        in_optimizer = sum(
            1 for e in chosen if any(start <= e.time_range.start <= end for start, end in windows)
        )
    return [(e.name, e.time_range.elapsed_us()) for e in chosen], in_optimizer


def _outermost(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return True


def _top(kernels, count) -> list[dict]:
    totals, calls = Counter(), Counter()
    for name, duration in kernels:
        totals[name] += duration
        calls[name] += 1
    return [
        {"name": name[:90], "calls": calls[name], "total_ms": total / 1e3}
        for name, total in totals.most_common(count)
    ]


def _row_line(row) -> str:
    return (
        f"{row['label']:<34} {row['setup']:<9} {row['median_ms']:9.2f} ms  "
        f"{row['kernels']:6d} kernels ({row['optimizer_kernels']} in optimizer.step), "
        f"kernel time {row['kernel_ms']:.2f} ms"
    )


def render(result, top: int) -> str:
    lines = [f"{result['device']} | torch {result['torch']} | {result['model']['description']}"]
    lines.append(f"batch {result['model']['batch']} x {result['model']['seq_len']}")
    lines += [_row_line(row) for row in result["rows"]]
    for row in result["rows"]:
        lines.append(f"\n{row['label']} [{row['setup']}]: costliest kernels")
        for entry in row["top"][:top]:
            lines.append(f"  {entry['total_ms']:8.2f} ms {entry['calls']:5d}x  {entry['name']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
