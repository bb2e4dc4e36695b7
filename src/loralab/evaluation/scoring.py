"""Scoring answers from one forward pass: the logits at answer positions (`answer_logits`), the
decision token's loss and accuracy, and ``score`` mode's pick of the option whose answer the
model finds most likely, with no decoding.

Every option's target (``Answer: The answer is A.`` vs ``... B.``) shares a token prefix and then
differs at one token. In a causal LM the next-token logits after the shared prefix do not depend
on anything later, so the forward pass that computes the training loss on the gold answer also
gives the option scores: compare its logits at the prefix end on each option's first token.

A task trained on its options' own texts (``task.answer_form=text``) has no such token: its
options are scored whole (`whole_option_choices`; their log-likelihoods in `likelihood.py`),
by their mean log-probability per token, as cloze mode scores them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from loralab.data.encoding import IGNORE_INDEX
from loralab.evaluation.likelihood import option_loglikelihoods


def answer_logits(
    model, batch, hidden: torch.Tensor | None = None, key: str = "labels"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at answer positions only, their targets, and how many each row has.

    The vocabulary projection is the largest matrix of a small LM; prompts are most of each
    sequence, so projecting only where a label exists saves a large share of the step.
    ``hidden``: the base model's last hidden states, where already computed; ``key``: the
    batch's labels to read (``input_labels``: every token, for ``data.train_on_inputs``).
    """
    if hidden is None:
        hidden = base_hidden(model, batch)
    targets = batch[key][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    return logits, targets[keep], keep.sum(dim=1)


def base_hidden(model, batch) -> torch.Tensor:
    """The base model's last hidden states for ``batch`` (before the vocabulary projection)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    return model.base_model(**inputs)[0]


def decision_token(
    logits: torch.Tensor,
    targets: torch.Tensor,
    counts: torch.Tensor,
    offsets: torch.Tensor,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss and correctness at the answer tokens that decide the answer, over the full
    vocabulary: the one token where the options part ways (the option letter, the first
    distinguishing answer word), or, where ``lengths`` (B,) says so, the mean over that many
    tokens from the offset (an answer given as the option's whole text).

    The answer format is learnt within a few steps and then dominates the mean answer loss;
    these tokens are what accuracy depends on. ``logits``/``targets``/``counts`` as from
    ``answer_logits``; ``offsets`` (B,) where the decision starts within each answer."""
    if lengths is None:  # one token per row: no host sync (this runs at every training step)
        at = counts.cumsum(0) - counts + offsets
        chosen = logits[at].float()
        loss = F.cross_entropy(chosen, targets[at], reduction="none")
        return loss, (chosen.argmax(dim=-1) == targets[at]).float()
    lengths = torch.minimum(lengths, counts - offsets).clamp(min=1)
    rows = torch.arange(len(counts), device=counts.device).repeat_interleave(lengths)
    within = torch.arange(int(lengths.sum()), device=counts.device) - (
        lengths.cumsum(0) - lengths
    ).repeat_interleave(lengths)
    at = (counts.cumsum(0) - counts + offsets)[rows] + within
    chosen = logits[at].float()
    loss = F.cross_entropy(chosen, targets[at], reduction="none")
    correct = (chosen.argmax(dim=-1) == targets[at]).float()
    zeros = torch.zeros(len(counts), device=loss.device)
    return (
        zeros.index_add(0, rows, loss) / lengths,
        zeros.index_add(0, rows, correct) / lengths,
    )


def whole_option_choices(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Predicted option per question where options are scored whole (``batch`` as
    `data.options.option_batch` lays them out): the highest mean log-probability per token."""
    scores = option_loglikelihoods(model, batch)
    return best_options(scores.loglik / scores.tokens, batch)


def best_options(values: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per question, the index of its option with the highest of ``values`` (one per option,
    in ``batch``'s option order)."""
    rows, index = batch["option_row"], batch["option_index"]
    shape = (int(rows.max()) + 1, int(index.max()) + 1)
    table = torch.full(shape, float("-inf"), device=values.device)
    table[rows, index] = values
    return table.argmax(dim=-1)


def predict_options(
    answer_logits: torch.Tensor,
    answer_counts: torch.Tensor,
    option_offset: torch.Tensor,
    option_token_ids: torch.Tensor,
) -> torch.Tensor:
    """Predicted option per row.

    ``answer_logits`` (sum of answer lengths, vocab) holds the logits at every answer position
    of the batch, row after row; ``answer_counts`` (B,) how many belong to each row;
    ``option_offset`` (B,) the answer position where options differ; ``option_token_ids``
    (B, max options) their tokens, padded with -1.
    """
    starts = answer_counts.cumsum(0) - answer_counts
    logits = answer_logits[starts + option_offset].float()
    scores = logits.gather(1, option_token_ids.clamp(min=0))
    scores = scores.masked_fill(option_token_ids < 0, float("-inf"))
    return scores.argmax(dim=-1)


def choose_options(model, batch, logits=None, counts=None) -> torch.Tensor:
    """Predicted option per row: whole options where the batch carries them, else the
    decision token read from ``logits``/``counts`` (`answer_logits` of the batch, computed
    here when not given)."""
    if "option_row" in batch:
        return whole_option_choices(model, batch)
    if logits is None:
        logits, _, counts = answer_logits(model, batch)
    return predict_options(logits, counts, batch["option_offset"], batch["option_token_ids"])
