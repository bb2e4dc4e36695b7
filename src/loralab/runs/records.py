"""A finished run's record, read back for results tables: its config, summary, curves and
per-question outcomes, and its row of ``runs.csv``.

Per-question outcomes come from the run's own ``predictions/test_step<N>.jsonl`` (the latest
step after training, step 0 before it) or, for a run that did not write them, from a
``loralab-eval`` folder on its adapter (``<run>/<name>/predictions.jsonl``); the "before" of a
run that did not evaluate the untrained model comes from a baseline ``loralab-eval`` folder.
Questions are matched by id, so two runs are compared question by question.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from loralab.evaluation.option_metrics import METRICS, mean_stderr

STEP_FILE = re.compile(r"^test_step(\d+)\.jsonl$")
GENERATE_FILE = re.compile(r"^test_generate_step(\d+)\.jsonl$")
Outcomes = dict[str, int]  # question id -> 1 right / 0 wrong


@dataclass
class RunRecord:
    """What results tables need of one run (`read_run`)."""

    run_dir: Path
    name: str
    config: dict
    summary: dict
    frame: pd.DataFrame
    after: dict[str, Outcomes] = field(default_factory=dict)  # metric -> outcomes
    before: dict[str, Outcomes] = field(default_factory=dict)
    generate_after: Outcomes | None = None
    tasks: dict[str, str] = field(default_factory=dict)  # question id -> task, in a mixed split
    golds: dict[str, int] = field(default_factory=dict)  # question id -> the right option's index

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def variant(self) -> dict[str, str]:
        """The adapter kind and optimizer name: what the papers' comparisons vary."""
        return {
            "adapter": str(self.config.get("adapter", {}).get("kind")),
            "optimizer": str(self.config.get("optimizer", {}).get("name")),
        }


def _question_rows(path: Path):
    """(question id, row) of each line of a predictions.jsonl; a row without an id is named by
    its line number."""
    for number, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        yield (str(row["id"]) if row.get("id") is not None else f"#{number}"), row


def read_outcomes(path: Path) -> tuple[dict[str, Outcomes], Outcomes | None]:
    """Per metric, each question's outcome in a predictions.jsonl; and generate mode's, where
    the file holds generated answers (its ``generate`` pick)."""
    by_metric: dict[str, Outcomes] = {}
    for question, row in _question_rows(path):
        for metric, pick in row.get("picks", {}).items():
            by_metric.setdefault(metric, {})[question] = int(pick == row["gold_index"])
    generated = by_metric.pop("generate", None)
    return by_metric, generated


def read_questions(path: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(question id -> task, question id -> gold option index) of a predictions.jsonl; the
    first is empty unless its rows name tasks (a split that mixes tasks)."""
    tasks, golds = {}, {}
    for question, row in _question_rows(path):
        if row.get("gold_index") is not None:
            golds[question] = int(row["gold_index"])
        if row.get("task") is not None:
            tasks[question] = str(row["task"])
    return tasks, golds


PRIOR = "most_common_answer"  # the constant answer a grid's runs are also compared with


def most_common_answer(runs: list[RunRecord]) -> Outcomes | None:
    """Each test question's outcome under one constant answer: the option position most often
    right among the test questions of its task (of the whole split where it mixes none). It
    is what an adapter that learns only the answer prior scores (label form: always
    ``answer1``, always ``B``); chosen knowing the test answers, no constant answer does
    better. None where the records hold no gold answers."""
    golds: dict[str, int] = {}
    tasks: dict[str, str] = {}
    for run in runs:
        golds.update(run.golds)
        tasks.update(run.tasks)
    if not golds:
        return None
    by_task: dict[str, Counter] = {}
    for question, gold in golds.items():
        by_task.setdefault(tasks.get(question, ""), Counter())[gold] += 1
    best = {task: max(c, key=lambda g: (c[g], -g)) for task, c in by_task.items()}
    return {q: int(gold == best[tasks.get(q, "")]) for q, gold in golds.items()}


def _steps(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.match(p.name))}


def has_test_record(run_dir: Path) -> bool:
    """Whether the run wrote its own per-question test record after training (a
    ``predictions/test_step<N>.jsonl`` with N > 0): it needs no ``loralab-eval`` folder."""
    return any(step > 0 for step in _steps(run_dir / "predictions", STEP_FILE))


def read_run(
    run_dir: Path,
    name: str,
    frame: pd.DataFrame,
    summary: dict,
    eval_names: tuple[str, ...] = (),
    baseline: dict[str, Outcomes] | None = None,
) -> RunRecord:
    """The record of the run in ``run_dir`` (``name``, ``frame``, ``summary`` as
    `figures.load_run` read them)."""
    config_file = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    record = RunRecord(run_dir, name, config or {}, summary, frame)
    scored = _steps(run_dir / "predictions", STEP_FILE)
    last = max(scored, default=None)
    if last is not None and last > 0:
        record.after, _ = read_outcomes(scored[last])
        record.tasks, record.golds = read_questions(scored[last])
    if 0 in scored:
        record.before, _ = read_outcomes(scored[0])
    elif baseline:
        record.before = baseline
    generated = _steps(run_dir / "predictions", GENERATE_FILE)
    if generated and max(generated) > 0:
        _, record.generate_after = read_outcomes(generated[max(generated)])
    for eval_name in eval_names:  # loralab-eval folders on this run's adapter
        file = run_dir / eval_name / "predictions.jsonl"
        if file.is_file():
            metrics, generate = read_outcomes(file)
            if generate is not None and record.generate_after is None:
                record.generate_after = generate
            if metrics and not record.after:
                record.after = metrics
                record.tasks, record.golds = read_questions(file)
    return record


def read_baseline(eval_dirs: list[Path]) -> dict[str, Outcomes]:
    """The untrained model's per-question outcomes from loralab-eval folders in score or cloze
    mode (their predictions.jsonl); empty where none has one."""
    for folder in eval_dirs:
        file = Path(folder) / "predictions.jsonl"
        if file.is_file():
            metrics, _ = read_outcomes(file)
            if metrics:
                return metrics
    return {}


def rate(outcomes: Outcomes | None) -> tuple[float | None, float | None]:
    """(accuracy, its standard error over questions) of ``outcomes``."""
    if not outcomes:
        return None, None
    hits = list(outcomes.values())
    return sum(hits) / len(hits), mean_stderr([bool(h) for h in hits])


RUNS_COLUMNS = [
    "experiment",
    "variant",
    "adapter",
    "optimizer",
    "seed",
    "steps",
    "model",
    "task",
    "answer_form",
    "test_size",
    *[f"{m}_{when}{se}" for m in METRICS for when in ("before", "after") for se in ("", "_stderr")],
    "gen_acc_before",
    "gen_acc_after",
    "val_decision_loss",
    "train_loss_final",
    "wall_time_s",
    "device",
    "commit",
    "run_dir",
]


def runs_row(record: RunRecord, experiment: str, variant: str, values: dict) -> dict:
    """One row of runs.csv; ``values`` holds what `figures` computed from the curves
    (gen_acc_before/after, val_decision_loss, train_loss_final)."""
    task = record.config.get("task", {})
    model = record.config.get("model", {})
    row = {
        "experiment": experiment,
        "variant": variant,
        **record.variant,
        "seed": record.seed,
        "steps": record.summary.get("steps", _max_step(record.frame)),
        "model": model.get("pretrained") or model.get("name"),
        "task": task.get("name"),
        "answer_form": task.get("answer_form", "label"),
        "test_size": len(next(iter(record.after.values()), {})) or None,
        "wall_time_s": record.summary.get("wall_time_s"),
        "device": record.summary.get("device"),
        "commit": record.summary.get("commit"),
        "run_dir": str(record.run_dir),
    }
    for metric in METRICS:
        for when, outcomes in (("before", record.before), ("after", record.after)):
            value, stderr = rate(outcomes.get(metric))
            row[f"{metric}_{when}"] = value
            row[f"{metric}_{when}_stderr"] = stderr
    return row | values


def _max_step(frame: pd.DataFrame) -> int | None:
    return int(frame["step"].max()) if "step" in frame and len(frame) else None


def write_runs_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def write_questions_csv(path: Path, groups: dict[str, list[RunRecord]]) -> None:
    """Every run's outcome on every test question (1 right, 0 wrong), one row per question, a
    column per run and metric (``<variant>/s<seed>/<metric>``; the untrained model's once as
    ``untrained/<metric>`` where every run's is the same): committed beside runs.csv, it is
    what claims.md's paired comparisons are computed from. A ``most_common_answer/acc`` column
    gives the constant answer's outcomes (`most_common_answer`) where the records hold the
    gold answers."""
    columns: dict[str, Outcomes] = {}
    prior = most_common_answer([run for runs in groups.values() for run in runs])
    if prior is not None:
        columns[f"{PRIOR}/acc"] = prior
    befores = [run.before for runs in groups.values() for run in runs if run.before]
    shared = bool(befores) and all(b == befores[0] for b in befores)
    if shared:
        for metric, outcomes in befores[0].items():
            columns[f"untrained/{metric}"] = outcomes
    for name, runs in groups.items():
        for run in sorted(runs, key=lambda r: (r.seed is None, r.seed)):
            for when, table in (("before", run.before), ("after", run.after)):
                if when == "before" and shared:
                    continue
                for metric, outcomes in table.items():
                    prefix = f"{name}/s{run.seed}" + ("/before" if when == "before" else "")
                    columns[f"{prefix}/{metric}"] = outcomes
    questions = sorted({q for outcomes in columns.values() for q in outcomes})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", *columns])
        for question in questions:
            writer.writerow([question, *(o.get(question, "") for o in columns.values())])
