"""Each whole option's log-likelihood after its context, the context encoded once.

The options of a question continue one prompt; scoring each as its own prompt+option sequence
re-encodes the prompt once per option. Here a batch's distinct contexts run once with the
key/value cache on; then the options' tokens run continuing from it, the cache gathered per
option: each option at its own context's length (explicit positions), attending to its
context's real tokens (the right padding masked) and to its own earlier tokens. Adapters act
on each token alone and attention sees the same keys and values, so the log-likelihoods equal
a whole sequence's to float rounding.

The context's last position predicts an option's first token; an option's last token is only
a target, never an input, so one-token options (``true``/``false``) need no second pass.
Options vary in length (ScienceQA's run from one token to forty): one pass padded to the
longest was two-thirds padding, so options of similar length share a pass.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers import DynamicCache


class OptionScores(NamedTuple):
    """Per option (O,): the summed log-probability of its tokens, how many it has, and its
    text's length in UTF-8 bytes and in characters (leading space aside, `data.options.Option`).
    The three metrics that pick an option from these are in `option_metrics.py`."""

    loglik: torch.Tensor
    tokens: torch.Tensor
    n_bytes: torch.Tensor
    n_chars: torch.Tensor


def option_loglikelihoods(model, batch: dict[str, torch.Tensor]) -> OptionScores:
    """Scores of the options in ``batch`` (as `data.options.option_batch` lays them out)."""
    context_mask, which = batch["context_attention_mask"], batch["option_context"]
    ids, mask = batch["option_input_ids"], batch["option_attention_mask"]
    body, keyword = model.base_model, _cache_keyword(model.base_model)
    cache = DynamicCache()
    out = body(
        input_ids=batch["context_input_ids"],
        attention_mask=context_mask,
        use_cache=True,
        **{keyword: cache},
    )[0]
    past = [(layer.keys, layer.values) for layer in cache.layers]
    lengths = context_mask.sum(dim=1)
    hidden = out.new_zeros(*ids.shape, out.shape[-1])  # (O, L, d): what predicts each token
    hidden[:, 0] = out[torch.arange(len(lengths), device=ids.device), lengths - 1][which]
    counts = mask.sum(dim=1)
    for members, longest in _similar_lengths(counts.tolist()):
        width = longest - 1  # an option's last token is only a target
        if width < 1:
            continue
        group = torch.tensor(members, device=ids.device)
        context = which[group]
        hidden[group, 1 : width + 1] = body(
            input_ids=ids[group, :width],
            attention_mask=torch.cat([context_mask[context], mask[group, :width]], dim=1),
            position_ids=lengths[context].unsqueeze(1) + torch.arange(width, device=ids.device),
            use_cache=True,
            **{keyword: _gathered(past, context)},
        )[0]
    keep = mask.bool()
    logits = model.get_output_embeddings()(hidden[keep])
    log_probs = -F.cross_entropy(logits.float(), ids[keep], reduction="none")
    rows = torch.arange(len(ids), device=ids.device).repeat_interleave(counts)
    loglik = torch.zeros(len(ids), device=ids.device).index_add(0, rows, log_probs)
    return OptionScores(loglik, counts, batch["option_bytes"], batch["option_chars"])


def _similar_lengths(counts: list[int]) -> list[tuple[list[int], int]]:
    """(options, their longest token count) per group, longest first: a group holds the options
    more than half as long as its longest, so padding is under half of each pass."""
    groups: list[tuple[list[int], int]] = []
    for i in sorted(range(len(counts)), key=counts.__getitem__, reverse=True):
        if groups and 2 * counts[i] > groups[-1][1]:
            groups[-1][0].append(i)
        else:
            groups.append(([i], counts[i]))
    return groups


def _gathered(past: list[tuple[torch.Tensor, torch.Tensor]], rows: torch.Tensor) -> DynamicCache:
    """A cache holding the context rows ``rows`` of ``past`` (each layer's keys and values)."""
    cache = DynamicCache()
    for layer, (keys, values) in enumerate(past):
        cache.update(keys[rows], values[rows], layer)
    return cache


def _cache_keyword(body) -> str:
    """The name a model's forward takes its key/value cache by: transformers 5 renamed
    ``past_key_values`` to ``cache``."""
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"
