"""``score`` mode: pick the option whose answer the model finds most likely, with no decoding.

Every option's target (``Answer: The answer is A.`` vs ``... B.``) shares a token prefix and then
differs at one token. In a causal LM the next-token logits after the shared prefix do not depend
on anything later, so the forward pass that computes the training loss on the gold answer also
gives the option scores: compare its logits at the prefix end on each option's first token.
"""

from __future__ import annotations

import torch


def option_tokens(tokenizer, option_targets: list[str]) -> tuple[int, list[int]]:
    """``(offset, token_ids)``: where in the answer the options part ways, and their tokens."""
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in option_targets]
    offset = 0
    while all(len(ids) > offset for ids in encoded) and len({ids[offset] for ids in encoded}) == 1:
        offset += 1
    firsts = [ids[offset] if len(ids) > offset else None for ids in encoded]
    if None in firsts or len(set(firsts)) != len(firsts):
        raise ValueError(
            f"options {option_targets!r} do not differ at one token after their shared prefix; "
            "score mode needs distinct first answer tokens (use generate mode for this task)"
        )
    return offset, firsts


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
