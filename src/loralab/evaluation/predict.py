"""Per-record predictions for one split of a task, in ``score``, ``generate`` or ``cloze`` mode.

``score`` reads the option scores from one teacher-forced forward pass (as during training;
for a task in the text answer form, every option's whole text continued from its question's
context, `likelihood.py`); ``generate`` decodes greedily and parses the text with the paper's
rule; ``cloze`` scores each option's own text after the bare question (no labels): score mode
on the task's text form (`with_answer_form`). Each result names the gold and predicted labels
(``B``, ``answer2``, ...), so all modes report alike. Score and cloze batches are questions of
similar length (less padding), as are generate mode's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from loralab.data.datamodule import TaskDataModule
from loralab.evaluation.generation import generate_answers, progress_bar
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
            return _generate(model, tokenizer, task, split, data_cfg, max_new_tokens, progress)
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
    predictions = [0] * len(items)
    with progress_bar(len(items), label, progress) as bar:
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = datamodule.collate([items[i] for i in rows])
            batch = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
            chosen = choose_options(model, batch)
            for row, choice in zip(rows, chosen.tolist(), strict=True):
                predictions[row] = choice
            bar.update(len(rows))
    records = datamodule.records[split]
    results = [
        _result(task, record, task.option_labels(record)[choice], None)
        for record, choice in zip(records, predictions, strict=True)
    ]
    return results, datamodule.dropped[split]


def _generate(
    model, tokenizer, task, split, data_cfg, max_new_tokens, progress
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
    )
    results = [
        _result(task, record, task.parse(record, text), text)
        for record, text in zip(records, outputs, strict=True)
        if text is not None
    ]
    return results, len(records) - len(results)


def _result(task, record, prediction: str | None, output: str | None) -> dict:
    labels = task.option_labels(record)
    gold = labels[task.gold_index(record)]
    result = {
        "id": record.get("id"),
        "gold": gold,
        "prediction": prediction,
        "options": len(labels),
    }
    result["correct"] = prediction == gold
    if output is not None:
        result["output"] = output
    return result | task.groups(record)
