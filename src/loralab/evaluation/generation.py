"""``generate`` mode: greedy (or beam-search) decoding of each prompt's answer, batched with
left padding.

Prompts are encoded exactly as in training (same special tokens, same context-side cut), so the
model continues from the ids it was trained on; a prompt leaves ``max_new_tokens`` of room in
``max_length``. Batches are formed from prompts of similar length (less padding) and the outputs
come back in the input order.
"""

from __future__ import annotations

import torch

from loralab.data.encoding import encode_prompt, fit_prompt, pad_left
from loralab.evaluation.progress import progress_bar


@torch.no_grad()
def generate_answers(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    max_length: int,
    overflow: str = "truncate",
    progress: str | None = None,
    num_beams: int = 1,
) -> list[str | None]:
    """Decoded continuation of each prompt (special tokens removed), None where the prompt was
    over-long and ``overflow="drop"``. ``progress``: a bar with this description on stderr.
    ``num_beams`` > 1: beam search (transformers' own, e.g. MoSLoRA's 4 beams), else greedy."""
    encoded: list[list[int] | None] = []
    for prompt in prompts:
        ids, lead = encode_prompt(tokenizer, prompt)
        fitted = fit_prompt(ids, lead, max_length - max_new_tokens)
        dropped = fitted is None or (fitted is not ids and overflow == "drop")
        encoded.append(None if dropped else fitted)
    kept = sorted(
        (i for i, ids in enumerate(encoded) if ids is not None), key=lambda i: len(encoded[i])
    )
    outputs: list[str | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    bar = progress_bar(len(kept), progress or "", enabled=progress is not None)
    for start in range(0, len(kept), batch_size):
        rows = kept[start : start + batch_size]
        batch = pad_left([encoded[i] for i in rows], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        sequences = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=num_beams,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = sequences[:, batch["input_ids"].shape[1] :]
        for row, text in zip(
            rows, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True
        ):
            outputs[row] = text
        bar.update(len(rows))
    bar.close()
    return outputs
