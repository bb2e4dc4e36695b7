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
    signed_points,
)
from loralab.runs.records import RunRecord


def question_tasks(groups: dict[str, list[RunRecord]]) -> dict[str, str]:
    """Question id -> task over every run's record; empty where no record names tasks."""
    tasks: dict[str, str] = {}
    for runs in groups.values():
        for run in runs:
            tasks.update(run.tasks)
    return tasks


def per_task_markdown(
    groups: dict[str, list[RunRecord]], claims: list[Claim], heading: str, metric: str = "acc"
) -> str | None:
    """The table (a row per task, then the whole split; a column for the untrained model, each
    variant and each claim's paired effect), or None unless the records mix two or more tasks."""
    tasks = question_tasks(groups)
    names = sorted(set(tasks.values()))
    recorded = {name: runs for name, runs in groups.items() if has_records(runs, metric)}
    if len(names) < 2 or not recorded:
        return None
    tables = {name: outcome_table(runs, metric) for name, runs in recorded.items()}
    first, ids = next(iter(tables)), next(iter(tables.values()))[0]
    for name, (other, _) in tables.items():
        if other != ids:
            raise ValueError(
                f"{name} and {first} were tested on different questions: per_task.md needs one "
                "test split for every run"
            )
    untrained = next(
        (runs for runs in recorded.values() if has_records(runs, metric, "before")), None
    )
    columns: list[tuple[str, np.ndarray]] = []
    if untrained is not None and outcome_table(untrained, metric, "before")[0] == ids:
        before = outcome_table(untrained, metric, "before")[1]
        columns.append(("untrained", before[:1] if (before == before[0]).all() else before))
    columns += [(f"{name} ({_seeds(len(recorded[name]))})", tables[name][1]) for name in recorded]
    effects = [c for c in claims if c.claim != TRAINED and c.a in tables and c.b in tables]

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
    task_of = np.array([tasks.get(q, "") for q in ids])
    counts = {name: int((task_of == name).sum()) for name in names}
    pooled = "the task mean" if len(set(counts.values())) == 1 else "not the task mean"
    lines = [
        heading,
        "",
        f"Metric: `{metric}` on each task's share of the test split, in points: mean ± sample "
        "std over seeds [95 % interval over seeds and questions]; an effect column is b − a, "
        "paired on the same questions, with its 95 % interval. The last row pools every "
        f"question ({pooled}: the tasks hold "
        + ("equal" if pooled == "the task mean" else "unequal")
        + " shares).",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---:|" + "---|" * (len(header) - 2),
        *(row(name, task_of == name) for name in names),
        row("all", np.ones(len(ids), dtype=bool)),
    ]
    return "\n".join(lines) + "\n"


def _seeds(count: int) -> str:
    return f"{count} seed" + ("" if count == 1 else "s")
