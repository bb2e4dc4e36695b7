"""The final evaluation table: overall accuracy and its breakdowns, as a dict and as markdown.

Breakdowns follow the papers' tables: ScienceQA by subject and by grade, the commonsense mix by
task with the plain mean of the task accuracies (MoSLoRA's "Avg."). In ``generate`` mode
unparsable outputs are counted apart; they count as wrong.

Below the table, the rates that say whether anything was learned: chance (the mean of 1 / the
number of options), always answering the split's most common answer, and how often the model
gave its own most common prediction (a model that learned only the answer prior gives one
answer to nearly every question and scores the majority rate).
"""

from __future__ import annotations

import re
from collections import Counter

BREAKDOWNS = ("task", "subject", "grade")


def summarize(results: list[dict], dropped: int = 0) -> dict:
    """``{"overall": {...}, "task": {...}, "subject": {...}, "grade": {...}, "task_mean": x}``;
    a breakdown appears when the records carry its key."""
    summary = {"overall": _accuracy(results) | {"dropped": dropped}}
    if results:
        summary["reference"] = _reference_rates(results)
    for key in BREAKDOWNS:
        values = sorted({r[key] for r in results if key in r}, key=_natural)
        if values:
            summary[key] = {v: _accuracy([r for r in results if r.get(key) == v]) for v in values}
    if len(summary.get("task", {})) > 1:
        accuracies = [row["accuracy"] for row in summary["task"].values()]
        summary["task_mean"] = sum(accuracies) / len(accuracies)
    return summary


def _accuracy(results: list[dict]) -> dict:
    correct = sum(r["correct"] for r in results)
    return {
        "n": len(results),
        "correct": correct,
        "accuracy": correct / len(results) if results else 0.0,
        "unparsable": sum(r["prediction"] is None for r in results),
    }


def _reference_rates(results: list[dict]) -> dict:
    """Chance, the majority answer's rate and the share of the most common prediction."""
    n = len(results)
    gold, gold_count = Counter(r["gold"] for r in results).most_common(1)[0]
    given = Counter(r["prediction"] for r in results if r["prediction"] is not None)
    top, top_count = given.most_common(1)[0] if given else (None, 0)
    rates = {"majority_answer": gold, "majority_rate": gold_count / n}
    rates |= {"top_prediction": top, "top_prediction_share": top_count / n}
    if all("options" in r for r in results):
        rates["chance"] = sum(1 / r["options"] for r in results) / n
    return rates


def _natural(value: str) -> list:
    """``grade2`` before ``grade10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(value))]


def to_markdown(summary: dict, title: str) -> str:
    """One markdown table: overall first, then each breakdown's rows, then the task mean."""
    lines = [f"### {title}", "", "| group | n | accuracy | unparsable |", "|---|---:|---:|---:|"]
    lines.append(_row("overall", summary["overall"]))
    for key in BREAKDOWNS:
        for value, row in summary.get(key, {}).items():
            lines.append(_row(f"{key}: {value}", row))
    if "task_mean" in summary:
        lines.append(f"| mean of tasks | | {100 * summary['task_mean']:.1f}% | |")
    rates = summary.get("reference")
    if rates:
        chance = f"chance {100 * rates['chance']:.1f}%; " if "chance" in rates else ""
        top = rates["top_prediction"]
        given = (
            f"most common prediction {top} ({100 * rates['top_prediction_share']:.1f}% of answers)"
            if top is not None
            else "no parsable prediction"
        )
        lines += [
            "",
            f"{chance}always {rates['majority_answer']} (the most common answer) "
            f"{100 * rates['majority_rate']:.1f}%; {given}.",
        ]
    if summary["overall"]["dropped"]:
        lines += [
            "",
            f"{summary['overall']['dropped']} over-long records dropped (data.overflow=drop).",
        ]
    return "\n".join(lines) + "\n"


def _row(name: str, row: dict) -> str:
    return f"| {name} | {row['n']} | {100 * row['accuracy']:.1f}% | {row['unparsable']} |"
