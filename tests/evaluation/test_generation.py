"""Batched greedy generation with left padding equals generating each prompt alone."""

import pytest
import torch

from loralab.data.encoding import pad_left
from loralab.evaluation.generation import generate_answers
from loralab.models.tiny import build_tiny_llama, build_tiny_tokenizer

PROMPTS = [
    "Question: Which is a fish?\n",
    "Context: N/A\nQuestion: Which object has more thermal energy? A long prompt here.\n",
    "Hi",
    "Options: (A) attract (B) repel\n",
    "Question: Will these magnets attract or repel each other?\n",
]


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tiny_tokenizer()
    return build_tiny_llama(tokenizer).eval(), tokenizer


def test_pad_left():
    batch = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batched_equals_one_by_one(tiny):
    model, tokenizer = tiny
    batched = generate_answers(model, tokenizer, PROMPTS, 6, batch_size=3, max_length=128)
    alone = [
        generate_answers(model, tokenizer, [p], 6, batch_size=1, max_length=128)[0] for p in PROMPTS
    ]
    assert batched == alone
    assert len(set(batched)) > 1  # a random model still answers differently per prompt


def test_greedy_continuation_is_the_argmax_path(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[0])["input_ids"]
    with torch.no_grad():
        for _ in range(4):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    expected = tokenizer.decode(ids[-4:], skip_special_tokens=True)
    got = generate_answers(model, tokenizer, PROMPTS[:1], 4, batch_size=1, max_length=128)[0]
    assert got == expected or expected.startswith(got)  # generation may stop at EOS


def test_over_long_prompts_are_cut_or_dropped(tiny):
    model, tokenizer = tiny
    long = "very long context " * 50 + "Question: Which is a fish?\n"
    cut = generate_answers(model, tokenizer, [long, "Hi"], 4, batch_size=2, max_length=32)
    assert all(isinstance(text, str) for text in cut)
    dropped = generate_answers(
        model, tokenizer, [long, "Hi"], 4, batch_size=2, max_length=32, overflow="drop"
    )
    assert dropped[0] is None and dropped[1] == cut[1]
