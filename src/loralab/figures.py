"""``loralab-figures RUN_DIR ...``: compare logged runs in one figure and one table.

Reads each run's ``metrics.csv`` and draws training loss, validation loss and accuracy over
steps (one line per run), plus a markdown table of the final accuracies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("train/loss", "training loss"), ("val/loss", "eval loss"), ("val/acc", "accuracy"))


def load_run(run_dir: Path) -> tuple[str, pd.DataFrame, dict]:
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.csv (is it a loralab run directory?)")
    summary_file = run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return summary.get("run_name", run_dir.name), pd.read_csv(metrics), summary


def draw(runs, out_dir: Path) -> list[Path]:
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.8))
    for ax, (column, label) in zip(axes, PANELS, strict=True):
        for name, frame, _ in runs:
            if column in frame:
                rows = frame[["step", column]].dropna()
                ax.plot(rows["step"], rows[column], "-" if len(rows) > 20 else "o-", label=name)
        ax.set(xlabel="step", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    paths = [out_dir / "runs.png", out_dir / "runs.pdf"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def accuracy_table(runs) -> str:
    lines = ["| run | test acc before | test acc after | steps |", "|---|---|---|---|"]
    for name, frame, summary in runs:
        tests = frame["test/acc"].dropna().tolist() if "test/acc" in frame else []
        before = summary.get("test_acc_before", tests[0] if len(tests) > 1 else None)
        after = summary.get("test_acc_after", tests[-1] if tests else None)
        cells = ["n/a" if v is None else f"{100 * v:.1f}" for v in (before, after)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {int(frame['step'].max())} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loralab-figures", description="Draw loss/accuracy curves and a table from runs."
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="loralab run directories")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    args = parser.parse_args(argv)
    try:
        runs = [load_run(d) for d in args.run_dirs]
    except FileNotFoundError as err:
        print(f"loralab-figures: {err}", file=sys.stderr)
        sys.exit(2)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = draw(runs, args.out)
    table = accuracy_table(runs)
    (args.out / "accuracy.md").write_text(table)
    print(table)
    print("figures:", ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
