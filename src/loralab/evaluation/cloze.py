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
import torch.nn.functional as F

from loralab.data.encoding import encode_prompt, fit_prompt
from loralab.evaluation.generation import progress_bar
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


def continuation_ids(tokenizer, context: str, option: str, max_length: int) -> tuple[list, int]:
    """``(ids, n)``: context ids (cut on the context side to fit) followed by the option's
    ``n`` ids, encoded after a space as the continuation of the context."""
    context_ids, lead = encode_prompt(tokenizer, context)
    option_ids = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
    fitted = fit_prompt(context_ids, lead, max(max_length - len(option_ids), lead + 1))
    return fitted + option_ids, len(option_ids)


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
    ``questions`` holds ``(context, option texts)`` pairs (`Task.cloze`)."""
    sequences = []  # (question, option, ids, continuation length)
    for q, (context, options) in enumerate(questions):
        for o, option in enumerate(options):
            sequences.append((q, o, *continuation_ids(tokenizer, context, option, max_length)))
    sequences.sort(key=lambda item: len(item[2]))
    scores = [[0.0] * len(options) for _, options in questions]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    with progress_bar(len(sequences), progress or "", progress is not None, "option") as bar:
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            width = max(len(ids) for _, _, ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros_like(input_ids)
            for row, (_, _, ids, _) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                mask[row, : len(ids)] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            hidden = model.base_model(input_ids=input_ids, attention_mask=mask)[0]
            for row, (q, o, ids, n) in enumerate(chunk):
                positions = slice(len(ids) - n - 1, len(ids) - 1)  # each predicts the next id
                logits = model.get_output_embeddings()(hidden[row, positions]).float()
                targets = input_ids[row, len(ids) - n : len(ids)]
                scores[q][o] = -F.cross_entropy(logits, targets).item()
            bar.update(len(chunk))
    return scores
