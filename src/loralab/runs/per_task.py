"""Each task's accuracy in a grid whose test split mixes tasks (the commonsense mix):
``per_task.md``, MoSLoRA's per-task table.

Computed from the per-question records like the other tables: each run's outcomes on one
task's questions, the 95 % interval over seeds and questions (`estimate`), the untrained model
once, and each claim between trained variants as a paired effect on that task (`compare`), so
a reader sees on which tasks two variants differ, and how little one task's share of the test
split can resolve.
"""

from __future__ import annotations

import numpy as np

from loralab.evaluation.statistics import compare
from loralab.runs.claims import (
    TRAINED,
    Claim,
    estimate_cell,
    has_records,
    outcome_table,
    prior_table,
    signed_points,
)
from loralab.runs.records import RunRecord, most_common_answer


def question_tasks(groups: dict[str, list[RunRecord]]) -> dict[str, str]:
    """Question id -> task over the runs' records; empty where no record names tasks.
    ValueError where two records give one question different tasks."""
    tasks: dict[str, str] = {}
    for runs in groups.values():
        for run in runs:
            for question, task in run.tasks.items():
                if tasks.setdefault(question, task) != task:
                    raise ValueError(
                        f"{run.run_dir}: question {question} is a {task} question here and a "
                        f"{tasks[question]} question in another run; one grid, one test split"
                    )
    return tasks


def per_task_markdown(
    groups: dict[str, list[RunRecord]], claims: list[Claim], heading: str, metric: str = "acc"
) -> str | None:
    """The table (a row per task, then the whole split; a column for the untrained model, each
    variant and each claim's paired effect), or None unless the records mix two or more tasks.
    Groups tested on other questions than the first recorded group's are left out, and named."""
    recorded = {name: runs for name, runs in groups.items() if has_records(runs, metric)}
    if not recorded:
        return None
    tables = {name: outcome_table(runs, metric) for name, runs in recorded.items()}
    ids = next(iter(tables.values()))[0]
    left_out = [name for name, (other, _) in tables.items() if other != ids]
    shown = {name: recorded[name] for name in tables if name not in left_out}
    tasks = question_tasks(shown)
    task_of = np.array([tasks.get(q, "(no task)") for q in ids])
    names = sorted(set(task_of))
    if len(names) < 2:
        return None

    columns: list[tuple[str, np.ndarray]] = []
    untrained = _untrained(shown, ids, metric)
    if untrained is not None:
        columns.append(("untrained", untrained))
    constant = prior_table(most_common_answer([r for runs in shown.values() for r in runs]), ids)
    if constant is not None:
        columns.append(("most common answer", constant))
    columns += [(f"{name} ({_seeds(len(runs))})", tables[name][1]) for name, runs in shown.items()]
    effects = [c for c in claims if c.claim != TRAINED and c.a in shown and c.b in shown]

    def row(label: str, keep: np.ndarray) -> str:
        cells = [estimate_cell(table[:, keep]) for _, table in columns]
        for c in effects:
            result = compare(
                tables[c.a][1][:, keep], tables[c.b][1][:, keep], c.result.paired_seeds
            )
            low, high = signed_points(result.low), signed_points(result.high)
            cells.append(f"{signed_points(result.effect)} [{low}, {high}]")
        return f"| {label} | {int(keep.sum())} | " + " | ".join(cells) + " |"

    header = ["task", "questions", *(label for label, _ in columns)]
    header += [f"{c.b} − {c.a}" for c in effects]
    equal_shares = len({int((task_of == name).sum()) for name in names}) == 1
    caption = (
        f"Metric: `{metric}` on each task's share of the test split, in points: mean ± sample "
        "std over seeds [95 % interval over seeds and questions]; an effect column is b − a, "
        'paired on the same questions, with its 95 % interval; "most common answer": always the '
        "option most often right among the task's test questions. The last row pools every "
        + (
            "question (the task mean: the tasks hold equal shares)."
            if equal_shares
            else "question (not the task mean: the tasks hold unequal shares)."
        )
    )
    if untrained is None:
        caption += " No untrained column: the runs do not share one untrained record."
    if left_out:
        caption += " Left out, tested on other questions: " + ", ".join(left_out) + "."
    lines = [
        heading,
        "",
        caption,
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---|" * (len(header) - 2),
        *(row(name, task_of == name) for name in names),
        row("all", np.ones(len(ids), dtype=bool)),
    ]
    return "\n".join(lines) + "\n"


def _untrained(groups: dict[str, list[RunRecord]], ids: list, metric: str) -> np.ndarray | None:
    """The untrained model's outcomes on ``ids`` (one row where every seed's agree), where every
    group holds the same untrained record; None otherwise (a grid mixing models or forms)."""
    found = None
    for runs in groups.values():
        if not has_records(runs, metric, "before"):
            return None
        before_ids, before = outcome_table(runs, metric, "before")
        if before_ids != ids:
            return None
        before = before[:1] if (before == before[0]).all() else before
        if found is not None and not np.array_equal(found, before):
            return None
        found = before
    return found


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")
