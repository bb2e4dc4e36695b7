"""Scoring answers from one forward pass: the logits at answer positions (`answer_logits`), the
decision token's loss and accuracy, and ``score`` mode's pick of the option whose answer the
model finds most likely, with no decoding.

Every option's target (``Answer: The answer is A.`` vs ``... B.``) shares a token prefix and then
differs at one token. In a causal LM the next-token logits after the shared prefix do not depend
on anything later, so the forward pass that computes the training loss on the gold answer also
gives the option scores: compare its logits at the prefix end on each option's first token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from loralab.data.encoding import IGNORE_INDEX


def answer_logits(model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits at answer positions only, their targets, and how many each row has.

    The vocabulary projection is the largest matrix of a small LM; prompts are most of each
    sequence, so projecting only where a label exists saves a large share of the step.
    """
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[
        0
    ]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])
    return logits, targets[keep], keep.sum(dim=1)


def decision_token(
    logits: torch.Tensor, targets: torch.Tensor, counts: torch.Tensor, offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss and correctness at the one answer token that decides the answer (the
    option letter, or the first token where the options part ways), over the full vocabulary.

    The answer format is learnt within a few steps and then dominates the mean answer loss;
    this token is what accuracy depends on. ``logits``/``targets``/``counts`` as from
    ``answer_logits``; ``offsets`` (B,) the decision token's position within each answer."""
    at = counts.cumsum(0) - counts + offsets
    chosen = logits[at].float()
    loss = F.cross_entropy(chosen, targets[at], reduction="none")
    return loss, (chosen.argmax(dim=-1) == targets[at]).float()


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
