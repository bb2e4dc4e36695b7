"""``claims.png``: each of a grid's claims as its effect with the 95 % interval, against zero.

One look tells which comparisons this grid resolves and which it cannot: an interval that
crosses the zero line is "not resolved at this size", however far its point lies from it.
"""

from __future__ import annotations

import os
import textwrap

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from loralab.runs.claims import Claim

VERDICT_COLOURS = {"holds": "tab:green", "reversed": "tab:red", "not resolved at this size": "0.45"}


def short_names(claims: list[Claim]) -> dict[str, str]:
    """Run-group names without the part all of them share (``arc_e-moe_lora-adamw`` ->
    ``adamw`` in an optimizer grid), so that the labels say what differs."""
    names = sorted({n for c in claims for n in (c.a, c.b) if n != "untrained"})
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    prefix = prefix[: prefix.rfind("-") + 1]  # whole name parts only
    return {name: name.removeprefix(prefix) for name in names} | {"untrained": "untrained"}


def claims_figure(claims: list[Claim], title: str = "", metric: str = "acc") -> plt.Figure:
    """A row per claim, top to bottom in claims.md's order: its effect (b - a, points) and
    95 % interval, coloured by verdict, with the claim named on the left."""
    short = short_names(claims)
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.38 * max(1, len(claims))))
    for row, claim in enumerate(claims):
        r = claim.result
        colour = VERDICT_COLOURS[r.verdict]
        ax.errorbar(
            100 * r.effect,
            -row,
            xerr=[[100 * (r.effect - r.low)], [100 * (r.high - r.effect)]],
            fmt="o",
            color=colour,
            capsize=3,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(
        [-row for row in range(len(claims))],
        [f"{c.claim}: {short[c.b]} − {short[c.a]}" for c in claims],
        fontsize=8,
    )
    ax.set_xlabel(f"effect on {metric}, b − a (points, 95 % interval)")
    ax.grid(axis="x", alpha=0.3)
    shown = [v for v in VERDICT_COLOURS if any(c.result.verdict == v for c in claims)]
    handles = [Line2D([], [], color=VERDICT_COLOURS[v], marker="o", label=v) for v in shown]
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    fig.tight_layout()
    return fig
