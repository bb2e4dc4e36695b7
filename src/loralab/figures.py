"""``loralab-figures RUN_DIR ...``: the papers' curves from logged runs, averaged over seeds.

Reads each run's ``metrics.csv`` (or, when a run has none, its offline W&B run), groups runs
that differ only in the seed (the ``-s<seed>`` suffix of the run name), and draws training
loss, eval loss and accuracy over steps: the mean of each group as a line, the spread (min to
max over seeds) as a band. Also writes a markdown table of test accuracy, mean and standard
deviation over seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("train/loss", "training loss"), ("val/loss", "eval loss"), ("val/acc", "accuracy"))
SEED_SUFFIX = re.compile(r"-s\d+$")


def load_run(run_dir: Path) -> tuple[str, pd.DataFrame, dict]:
    """(run name, metrics by step, summary) from a loralab run directory."""
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        frame = pd.read_csv(metrics)
    else:
        from loralab.logs.wandb_offline import find_run_file, read_history

        try:
            rows = read_history(find_run_file(run_dir))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{run_dir} has no metrics.csv and no offline W&B run (is it a loralab run?)"
            ) from None
        frame = pd.DataFrame(rows).rename(columns={"trainer/global_step": "step"})
    return summary.get("run_name", run_dir.name), frame, summary


def group_by_seed(runs) -> dict[str, list]:
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(SEED_SUFFIX.sub("", run[0]), []).append(run)
    return groups


def curve(frames: list[pd.DataFrame], column: str) -> pd.DataFrame:
    """Per step: mean, min and max of ``column`` over the frames that logged it."""
    series = [
        f.dropna(subset=[column]).groupby("step")[column].last() for f in frames if column in f
    ]
    table = pd.concat(series, axis=1)
    return pd.DataFrame(
        {"mean": table.mean(axis=1), "min": table.min(axis=1), "max": table.max(axis=1)}
    )


def draw(groups: dict[str, list], out_dir: Path) -> list[Path]:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.8))
    for ax, (column, label) in zip(axes, PANELS, strict=True):
        for name, runs in groups.items():
            frames = [frame for _, frame, _ in runs if column in frame]
            if not frames:
                continue
            stats = curve(frames, column)
            style = "-" if len(stats) > 20 else "o-"
            ax.plot(stats.index, stats["mean"], style, label=f"{name} (n={len(frames)})")
            if len(frames) > 1:
                ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
        ax.set(xlabel="step", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths = [out_dir / "runs.png", out_dir / "runs.pdf"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def final_accuracy(frame: pd.DataFrame, summary: dict) -> tuple[float | None, float | None]:
    tests = frame["test/acc"].dropna().tolist() if "test/acc" in frame else []
    before = summary.get("test_acc_before", tests[0] if len(tests) > 1 else None)
    return before, summary.get("test_acc_after", tests[-1] if tests else None)


def accuracy_table(groups: dict[str, list]) -> str:
    """Test accuracy (%) before and after training: mean ± std over seeds."""
    lines = [
        "| run | seeds | test acc before | test acc after | steps |",
        "|---|---|---|---|---|",
    ]
    for name, runs in groups.items():
        pairs = [final_accuracy(frame, summary) for _, frame, summary in runs]
        cells = []
        for values in zip(*pairs, strict=True):
            known = pd.Series([100 * v for v in values if v is not None], dtype=float)
            cells.append("n/a" if known.empty else f"{known.mean():.1f} ± {known.std(ddof=0):.1f}")
        steps = max(int(frame["step"].max()) for _, frame, _ in runs)
        lines.append(f"| {name} | {len(runs)} | {cells[0]} | {cells[1]} | {steps} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loralab-figures",
        description="Loss/accuracy curves (mean and spread over seeds) and an accuracy table.",
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="loralab run directories")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(d) for d in args.run_dirs]
    except FileNotFoundError as err:
        print(f"loralab-figures: {err}", file=sys.stderr)
        sys.exit(2)
    groups = group_by_seed(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = draw(groups, args.out)
    table = accuracy_table(groups)
    (args.out / "accuracy.md").write_text(table)
    print(table)
    print("figures:", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
