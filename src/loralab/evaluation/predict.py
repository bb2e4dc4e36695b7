"""Per-record predictions for one split of a task, in ``score``, ``generate`` or ``cloze`` mode.

``score`` reads the option scores from one teacher-forced forward pass (as during training;
for a task in the text answer form, every option's whole text continued from its question's
context, `likelihood.py`); ``generate`` decodes greedily and parses the text with the paper's
rule; ``cloze`` scores each option's own text after the bare question (no labels): score mode
on the task's text form (`with_answer_form`). Each result names the gold and predicted labels
(``B``, ``answer2``, ...), so all modes report alike. Score and cloze results also hold the
option picked under each metric (``picks``: ``acc``, and where options are scored whole
``acc_norm`` and ``acc_per_token``, `option_metrics.py`) and, for whole options, each option's
scores; ``prediction`` (and ``correct``, ``accuracy``) is the ``acc`` pick. Score and cloze batches are questions of similar length (less padding), as are
generate mode's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from loralab.data.datamodule import TaskDataModule
from loralab.evaluation.generation import generate_answers
from loralab.evaluation.likelihood import option_loglikelihoods
from loralab.evaluation.option_metrics import option_picks, option_tables
from loralab.evaluation.progress import progress_bar
from loralab.evaluation.scoring import choose_options
from loralab.tasks import Task
from loralab.tasks.text_answers import with_answer_form

MODES = ("score", "generate", "cloze")


def predict_split(
    model,
    tokenizer,
    task: Task,
    split: str,
    mode: str,
    data_cfg: Mapping[str, Any],
    max_new_tokens: int = 10,
    progress: bool = False,
    num_beams: int = 1,
) -> tuple[list[dict], int]:
    """``(results, dropped)``: one result per evaluated record, and how many over-long records
    ``data.overflow="drop"`` left out. ``data_cfg``: max_length, overflow, eval_batch_size.
    ``progress`` shows a bar with throughput and time left on stderr."""
    was_training = model.training
    model.eval()
    try:
        if mode in ("score", "cloze"):
            if mode == "cloze" and not task.whole_options:
                task = with_answer_form(task, "text")
            return _score(model, tokenizer, task, split, data_cfg, f"{mode} {split}", progress)
        if mode == "generate":
            return _generate(
                model, tokenizer, task, split, data_cfg, max_new_tokens, progress, num_beams
            )
        raise ValueError(f"mode={mode!r} must be one of {list(MODES)}")
    finally:
        model.train(was_training)


@torch.no_grad()
def _score(model, tokenizer, task, split, data_cfg, label, progress) -> tuple[list[dict], int]:
    only_split = dataclasses.replace(task, splits={split: task.splits[split]})
    eval_only = dict(data_cfg, batch_size=data_cfg["eval_batch_size"], seed=0)  # no train loader
    datamodule = TaskDataModule(only_split, tokenizer, eval_only)
    datamodule.setup()
    items, size = datamodule.encoded[split], datamodule.eval_batch_size
    order = sorted(range(len(items)), key=lambda i: len(items[i].example.input_ids))  # less padding
    device = next(model.parameters()).device
    picks: list[dict[str, int]] = [{}] * len(items)
    scores: list[list[dict] | None] = [None] * len(items)
    with progress_bar(len(items), label, progress) as bar:
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = datamodule.collate([items[i] for i in rows])
            batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
            if "option_row" in batch:  # options scored whole
                option_scores = option_loglikelihoods(model, batch)
                chosen = option_picks(option_scores, batch)
                for row, table in zip(rows, option_tables(option_scores, batch), strict=True):
                    scores[row] = table
            else:  # one decision token per option: its logit is the only score
                chosen = {"acc": choose_options(model, batch)}
            chosen = {metric: values.tolist() for metric, values in chosen.items()}
            for i, row in enumerate(rows):
                picks[row] = {metric: values[i] for metric, values in chosen.items()}
            bar.update(len(rows))
    results = score_results(task, datamodule.records[split], picks, scores)
    return results, datamodule.dropped[split]


def score_results(
    task: Task, records: list[dict], picks: list[dict[str, int]], tables: list[list[dict] | None]
) -> list[dict]:
    """One result per record from its option picks (metric -> option index) and, where options
    are scored whole, its options' scores (`option_metrics.option_tables`; else None)."""
    results = []
    for record, pick, table in zip(records, picks, tables, strict=True):
        result = _result(task, record, task.option_labels(record)[pick["acc"]], None)
        result["picks"] = pick
        if table is not None:
            result["option_scores"] = table
        results.append(result)
    return results


def _generate(
    model, tokenizer, task, split, data_cfg, max_new_tokens, progress, num_beams
) -> tuple[list[dict], int]:
    records = task.splits[split]
    outputs = generate_answers(
        model,
        tokenizer,
        [task.prompt(record) for record in records],
        max_new_tokens=max_new_tokens,
        batch_size=int(data_cfg["eval_batch_size"]),
        max_length=int(data_cfg["max_length"]),
        overflow=data_cfg["overflow"],
        progress=f"generate {split}" if progress else None,
        num_beams=num_beams,
    )
    results = []
    for record, text in zip(records, outputs, strict=True):
        if text is None:  # an over-long prompt dropped
            continue
        parsed = task.parse(record, text)
        result = _result(task, record, parsed, text)
        labels = task.option_labels(record)
        # a parser may read a label the question does not offer ("F" of two options): wrong
        result["picks"] = {"generate": labels.index(parsed) if parsed in labels else None}
        results.append(result)
    return results, len(records) - len(results)


def _result(task, record, prediction: str | None, output: str | None) -> dict:
    labels = task.option_labels(record)
    gold = labels[task.gold_index(record)]
    result = {
        "id": record.get("id"),
        "gold": gold,
        "gold_index": task.gold_index(record),
        "prediction": prediction,
        "options": len(labels),
    }
    result["correct"] = prediction == gold
    if output is not None:
        result["output"] = output
    return result | task.groups(record)
