"""The final evaluation table: overall accuracy and its breakdowns, as a dict and as markdown.

Breakdowns follow the papers' tables: ScienceQA by subject and by grade, the commonsense mix by
task with the plain mean of the task accuracies (MoSLoRA's "Avg."). In ``generate`` mode
unparsable outputs are counted apart; they count as wrong.

Below the table, the rates that say whether anything was learned: chance (the mean of 1 / the
number of options), always answering the split's most common answer, and how often the model
gave its own most common prediction (a model that learned only the answer prior gives one
answer to nearly every question and scores the majority rate).

Score and cloze results also give each row lm-eval's metrics with their standard errors
(``acc``, ``acc_stderr``, ...; `option_metrics.py`): in the label form ``acc`` is the decision
token's pick (one token per option, so there is nothing to normalise) and equals ``accuracy``;
where options are scored whole ``acc_norm`` and ``acc_per_token`` join it; ``accuracy`` is
``acc``.
"""

from __future__ import annotations

import re
from collections import Counter

from loralab.evaluation.option_metrics import METRICS, mean_stderr

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
        rows = summary["task"].values()
        summary["task_mean"] = sum(row["accuracy"] for row in rows) / len(rows)
        for metric in _metrics(results):
            summary[f"task_mean_{metric}"] = sum(row[metric] for row in rows) / len(rows)
    return summary


def _metrics(results: list[dict]) -> list[str]:
    """The metrics every result has a pick for."""
    return [m for m in METRICS if results and all(m in r.get("picks", {}) for r in results)]


def _accuracy(results: list[dict]) -> dict:
    correct = sum(r["correct"] for r in results)
    row = {
        "n": len(results),
        "correct": correct,
        "accuracy": correct / len(results) if results else 0.0,
        "unparsable": sum(r["prediction"] is None for r in results),
    }
    for metric in _metrics(results):
        hits = [r["picks"][metric] == r["gold_index"] for r in results]
        row[metric] = sum(hits) / len(hits)
        row[f"{metric}_stderr"] = mean_stderr(hits)
    return row


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
    """One markdown table: overall first, then each breakdown's rows, then the task mean; a
    column per metric (± its standard error) where the summary has them, else accuracy."""
    metrics = [m for m in METRICS if m in summary["overall"]]
    columns = metrics or ["accuracy"]
    lines = [
        f"### {title}",
        "",
        f"| group | n | {' | '.join(columns)} | unparsable |",
        "|---|---:|" + "---:|" * len(columns) + "---:|",
    ]
    lines.append(_row("overall", summary["overall"], columns))
    for key in BREAKDOWNS:
        for value, row in summary.get(key, {}).items():
            lines.append(_row(f"{key}: {value}", row, columns))
    if "task_mean" in summary:
        means = (
            [summary["task_mean"]] if not metrics else [summary[f"task_mean_{m}"] for m in metrics]
        )
        lines.append(f"| mean of tasks | | {' | '.join(f'{100 * v:.1f}%' for v in means)} | |")
    if metrics:
        lines += ["", _METRIC_NOTE[len(metrics) > 1]]
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


_METRIC_NOTE = (
    "acc: the option whose decision token has the highest logit; ± one standard error over "
    "questions.",
    "acc: highest summed log-likelihood; acc_norm: highest log-likelihood per character of the "
    "option text (lm-eval's acc and acc_norm); acc_per_token: highest mean log-probability per "
    "token; ± one standard error over questions.",
)


def _row(name: str, row: dict, columns: list[str]) -> str:
    cells = []
    for column in columns:
        cell = f"{100 * row[column]:.1f}%"
        if row.get(f"{column}_stderr") is not None:
            cell += f" ± {100 * row[f'{column}_stderr']:.1f}"
        cells.append(cell)
    return f"| {name} | {row['n']} | {' | '.join(cells)} | {row['unparsable']} |"
