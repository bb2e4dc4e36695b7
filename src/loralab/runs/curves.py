"""A run's own ``curves.png``, drawn by the run when it ends (the grid's figures, averaged
over seeds, are ``loralab-figures``')."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

RUN_PANELS = (
    ("loss (all answer tokens)", ["train/loss", "val/loss"]),
    ("decision-token loss", ["train/decision_loss", "val/decision_loss"]),
    ("accuracy", ["val/acc", "test/acc", "train/decision_acc", "val/decision_acc"]),
)


def plot_run_curves(metrics_csv: Path, out_png: Path, title: str = "") -> Path:
    """Three panels over steps: the answer loss, the loss of the token that decides the
    answer (the full loss is mostly the answer format), and the accuracies."""
    frame = pd.read_csv(metrics_csv)
    fig, axes = plt.subplots(1, len(RUN_PANELS), figsize=(15, 3.8))
    for ax, (label, columns) in zip(axes, RUN_PANELS, strict=True):
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
