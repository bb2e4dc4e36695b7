"""Ratios against their targets, the printed table, the JSON file and the scaling plot."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ratio:
    """`numerator / denominator` of medians (time) or of peaks (memory); `limit` None: info."""

    label: str
    numerator: str
    denominator: str
    limit: float | None = None
    metric: str = "time"

    def row(self, value: float) -> dict:
        passed = None if self.limit is None else bool(value <= self.limit)
        return {
            "label": self.label,
            "metric": self.metric,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": value,
            "target": None if self.limit is None else f"<= {self.limit:g}",
            "pass": passed,
        }


STEP_RATIOS = (
    Ratio("MoE-LoRA(20,10,4) / LoRA r=4", "moe_lora", "lora_r4", 1.25),
    Ratio("MoE-LoRA(20,10,4) gate-rescaled / LoRA r=4", "moe_lora_g", "lora_r4", 1.30),
    Ratio("MoE-LoRA(20,10,4) / frozen base", "moe_lora", "frozen", 1.40),
    Ratio("MoE-LoRA(20,10,4) / looped MoE-LoRA", "moe_lora", "looped", 0.50),
    Ratio("LoRA r=4 ours / PEFT", "lora_r4", "peft_lora_r4", 1.05),
    Ratio("MoE-LoRA step RAdamW / AdamW", "moe_lora_radamw", "moe_lora", 1.05),
    Ratio("MoE-LoRA(20,10,4) gate-rescaled / frozen base", "moe_lora_g", "frozen"),
    Ratio("MoE-LoRA(20,10,4) / LoRA r=80", "moe_lora", "lora_r80"),
    Ratio("LoRA r=80 / LoRA r=4", "lora_r80", "lora_r4"),
    Ratio("LoRA r=4 / frozen base", "lora_r4", "frozen"),
    Ratio("looped MoE-LoRA / frozen base", "looped", "frozen"),
    Ratio("peak memory MoE-LoRA(20,10,4) / LoRA r=4", "moe_lora", "lora_r4", 1.2, "memory"),
    Ratio("peak memory gate-rescaled / LoRA r=4", "moe_lora_g", "lora_r4", None, "memory"),
    Ratio("peak memory looped / LoRA r=4", "looped", "lora_r4", None, "memory"),
    Ratio("peak memory PEFT / LoRA r=4", "peft_lora_r4", "lora_r4", None, "memory"),
)
OPTIMIZER_RATIOS = (
    Ratio("optimizer step alone RAdamW / AdamW", "radamw", "adamw"),
    Ratio("optimizer step alone LoRA+ / AdamW", "loraplus", "adamw"),
    Ratio("optimizer step alone LoRA-RITE / AdamW", "lorarite", "adamw"),
    Ratio("optimizer step alone RSGD / SGD", "rsgd", "sgd"),
)
CLOCK_WORDS = {
    "wall": "wall-clock time",
    "cpu": "process CPU time (one thread: wall time less the waits for a core)",
}
SWEEP_ELASTICITY_LIMIT = 1.0  # "sub-linear": d log(step time) / d log(experts) < 1


def tracked(ratios) -> list[tuple[str, str]]:
    """The timed ratios that carry a target: the ones the rounds must make stable."""
    return [(r.numerator, r.denominator) for r in ratios if r.limit and r.metric == "time"]


def ratio_rows(ratios, medians: dict, peaks: dict | None = None) -> list[dict]:
    rows = []
    for ratio in ratios:
        source = medians if ratio.metric == "time" else peaks
        if source and ratio.numerator in source and ratio.denominator in source:
            rows.append(ratio.row(source[ratio.numerator] / source[ratio.denominator]))
    return rows


def fit_slopes(xs: list[float], ys: list[float]) -> dict:
    """Least-squares slopes: log-log (elasticity; < 1 is sub-linear) and linear (s per unit)."""
    return {
        "loglog": _slope([math.log(x) for x in xs], [math.log(y) for y in ys]),
        "linear_s_per_unit": _slope(xs, ys),
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


# ----------------------------------------------------------------------------------- the table


def render(results: dict) -> str:
    meta = results["meta"]
    threads = "" if meta["threads"] is None else f", {meta['threads']} thread(s)"
    lines = [
        f"loralab train-step benchmark: {meta['device_name']}, {meta['dtype']}{threads}, "
        f"torch {meta['torch']}" + (", torch.compile" if meta["compile"] else ""),
        "loss: causal-LM cross-entropy on random tokens (labels = inputs); "
        f"adapters on q/k/v/o, alpha 16, dropout 0.05, seed {meta['seed']}; "
        f"times: medians over interleaved rounds of {CLOCK_WORDS[meta['clock']]}; "
        f"memory: {meta['memory_method']}",
    ]
    if meta["quick"]:
        lines.append(
            "QUICK smoke sizes: fixed per-step costs dominate these tiny steps; the targets are "
            "defined for the full run, so PASS/FAIL below is not a verdict"
        )
    for model in results["models"].values():
        lines += ["", *_model_block(model)]
    if results.get("sweep"):
        lines += ["", *_sweep_block(results["sweep"])]
    rows = results["targets"]
    failed = [row for row in rows if row["pass"] is False]
    lines += [
        "",
        f"targets: {len(rows) - len(failed)}/{len(rows)} pass"
        + ("" if not failed else "; FAIL: " + "; ".join(_where(row) for row in failed)),
        f"total {results['elapsed_s']:.0f} s",
    ]
    return "\n".join(lines)


def _where(row: dict) -> str:
    return f"{row['model']}: {row['label']} = {row['value']:.3f} ({row['target']})"


def _model_block(model: dict) -> list[str]:
    spec, timing = model["spec"], model["timing"]
    lines = [
        f"== {spec['name']}: {spec['description']}; batch {spec['batch']} x {spec['seq_len']} "
        f"tokens ==",
        f"rounds: {timing['rounds']} ({timing['stopped']}), {timing['elapsed_s']:.0f} s",
        f"{'variant':<36}{'step ms':>10}{'x frozen':>10}{'x LoRA4':>9}{'spread':>8}"
        f"{'peak MiB':>10}{'x LoRA4':>9}{'trainable':>12}",
    ]
    variants = model["variants"]
    frozen = variants.get("frozen", {}).get("median_s")
    lora = variants.get("lora_r4", {})
    for entry in variants.values():
        median, peak = entry["median_s"], entry["peak_bytes"]
        lines.append(
            f"{entry['label']:<36}{median * 1e3:>10.1f}"
            f"{_div(median, frozen):>10}{_div(median, lora.get('median_s')):>9}"
            f"{entry['spread'] * 100:>7.1f}%{peak / 2**20:>10.1f}"
            f"{_div(peak, lora.get('peak_bytes')):>9}{entry['trainable']:>12,}"
        )
    if model.get("optimizer"):
        opt = model["optimizer"]
        steps = ", ".join(f"{name} {ms * 1e3:.2f} ms" for name, ms in opt["median_s"].items())
        lines.append(
            f"optimizer step alone over MoE-LoRA(20,10,4) of all layers ({opt['params']:,} "
            f"params, {opt['rounds']} rounds, {opt['stopped']}): {steps}"
        )
    lines += ["", *_ratio_table(model["ratios"])]
    return lines


def _ratio_table(rows: list[dict]) -> list[str]:
    lines = [f"{'ratio':<50}{'value':>8}{'target':>10}  result"]
    for row in rows:
        result = "info" if row["pass"] is None else ("PASS" if row["pass"] else "FAIL")
        lines.append(f"{row['label']:<50}{row['value']:>8.3f}{row['target'] or '-':>10}  {result}")
    return lines


def _sweep_block(sweep: dict) -> list[str]:
    spec, timing = sweep["spec"], sweep["timing"]
    lines = [
        f"== scaling sweep on {spec['name']}: {spec['description']}; batch {spec['batch']} x "
        f"{spec['seq_len']} tokens; top_k = experts // 2 ==",
        f"rounds: {timing['rounds']} ({timing['stopped']}), {timing['elapsed_s']:.0f} s; frozen "
        f"base {sweep['frozen_s'] * 1e3:.1f} ms",
        f"{'experts':>8}{'rank':>6}{'top_k':>6}{'ours ms':>10}{'looped ms':>11}{'looped/ours':>13}"
        f"{'ours MiB':>10}{'looped MiB':>12}",
    ]
    for point in sweep["points"]:
        lines.append(
            f"{point['experts']:>8}{point['rank']:>6}{point['top_k']:>6}"
            f"{point['ours_s'] * 1e3:>10.1f}{point['looped_s'] * 1e3:>11.1f}"
            f"{point['looped_s'] / point['ours_s']:>13.2f}"
            f"{point['ours_peak_bytes'] / 2**20:>10.1f}{point['looped_peak_bytes'] / 2**20:>12.1f}"
        )
    for axis, slopes in sweep["slopes"].items():
        unit = "expert" if axis == "experts" else "rank unit"
        lines.append(
            f"slope vs {axis}: ours {slopes['ours']['loglog']:.3f} log-log "
            f"({slopes['ours']['linear_s_per_unit'] * 1e3:.2f} ms per {unit}), looped "
            f"{slopes['looped']['loglog']:.3f} log-log "
            f"({slopes['looped']['linear_s_per_unit'] * 1e3:.2f} ms per {unit})"
        )
    lines += ["", *_ratio_table(sweep["ratios"])]
    return lines


def _div(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.3f}"


# --------------------------------------------------------------------------- JSON and the plot


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def plot_sweep(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    points = sweep["points"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, axis, fixed in ((axes[0], "experts", "rank"), (axes[1], "rank", "experts")):
        chosen = [p for p in points if p["axis"] in (axis, "both")]
        chosen.sort(key=lambda p: p[axis])
        xs = [p[axis] for p in chosen]
        for key, label, style in (
            ("ours_s", "loralab (stacked)", "o-"),
            ("looped_s", "looped reference", "s--"),
        ):
            ax.plot(xs, [p[key] * 1e3 for p in chosen], style, label=label)
        ax.axhline(sweep["frozen_s"] * 1e3, color="gray", ls=":", label="frozen base")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel(f"{axis} ({fixed} {chosen[0][fixed]})")
        ax.set_ylabel("training step (ms)")
        slope = sweep["slopes"][axis]
        ax.set_title(
            f"step time vs {axis}: slope ours {slope['ours']['loglog']:.2f}, "
            f"looped {slope['looped']['loglog']:.2f}",
            fontsize=9,
        )
        ax.legend(fontsize=8)
    spec = sweep["spec"]
    fig.suptitle(
        f"{spec['name']}, batch {spec['batch']} x {spec['seq_len']}, {sweep['device']}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
