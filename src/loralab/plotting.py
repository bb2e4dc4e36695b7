"""Loss and accuracy curves of one run, drawn from its metrics CSV."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PANELS = (("loss", ["train/loss", "val/loss"]), ("accuracy", ["val/acc", "test/acc"]))


def plot_run_curves(metrics_csv: Path, out_png: Path, title: str = "") -> Path:
    """Two panels over steps: train/val loss and val/test accuracy."""
    frame = pd.read_csv(metrics_csv)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (label, columns) in zip(axes, PANELS, strict=True):
        for column in columns:
            if column in frame:
                rows = frame[["step", column]].dropna()
                style = "o-" if len(rows) < 20 else "-"
                ax.plot(rows["step"], rows[column], style, label=column, markersize=4)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
