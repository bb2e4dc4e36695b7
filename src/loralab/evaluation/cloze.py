"""``cloze`` mode: the option whose own text the model finds most likely after the question.

No options are listed and no label is asked for: each option's text is scored as the
continuation of ``Question: ...\\nAnswer:`` by its mean log-probability per token (so longer
options are not penalised for their length), and the highest wins. This is how small models'
knowledge is usually measured: a model too small to bind an answer label (``answer2``, ``B``) to
the option it names can still prefer the right text. Sequences are encoded as in training (the
tokenizer's BOS, context-side cut to ``max_length``, whatever ``data.overflow`` says: the option
text is what is scored) and batched by length.
"""

from __future__ import annotations

import torch

from loralab.data.encoding import encode_continuation, pad_right
from loralab.evaluation.generation import progress_bar
from loralab.evaluation.scoring import sequence_scores
from loralab.tasks import Task
from loralab.tasks.sources import DataError


def cloze_questions(task: Task, records: list[dict]) -> list[tuple[str, list[str]]]:
    """Each record's ``(context, option texts)``; a task without a cloze form, or a record whose
    options cannot be read from it, is a `DataError` naming it (before any model loads)."""
    questions = []
    for record in records:
        try:
            form = task.cloze(record)
        except ValueError as err:
            raise DataError(f"task {task.name!r}: {err}") from None
        if form is None:
            raise DataError(
                f"task {task.name!r} has no cloze form (its records do not give each option's "
                "text): use mode=score or mode=generate"
            )
        questions.append(form)
    return questions


@torch.no_grad()
def option_scores(
    model,
    tokenizer,
    questions: list[tuple[str, list[str]]],
    batch_size: int,
    max_length: int,
    progress: str | None = None,
) -> list[list[float]]:
    """Mean log-probability per token of each option's text after its context, per question:
    ``questions`` holds ``(context, option texts)`` pairs (`Task.cloze`). The logits come from
    `sequence_scores`, as in score mode's whole-option scoring, at the option's positions only."""
    sequences = []  # (question, option, encoded)
    for q, (context, options) in enumerate(questions):
        for o, option in enumerate(options):
            encoded = encode_continuation(tokenizer, context, " " + option, max_length)
            sequences.append((q, o, encoded))
    sequences.sort(key=lambda item: len(item[2].input_ids))
    scores = [[0.0] * len(options) for _, options in questions]
    device = next(model.parameters()).device
    with progress_bar(len(sequences), progress or "", progress is not None, "option") as bar:
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            batch = pad_right([encoded for _, _, encoded in chunk], tokenizer.pad_token_id)
            chunk_scores = sequence_scores(model, {k: v.to(device) for k, v in batch.items()})
            for (q, o, _), score in zip(chunk, chunk_scores.tolist(), strict=True):
                scores[q][o] = score
            bar.update(len(chunk))
    return scores
