"""Whole options scored from their context's cached keys and values (`option_loglikelihoods`)
equal the reference written here: each option's whole prompt+option sequence through the
model, one at a time (how options were scored before). Every adapter kind with non-zero B, in
float32 and under bf16 autocast; ragged questions (context lengths, option counts and lengths,
right padding), and contexts cut differently per option."""

import pytest
import torch
from omegaconf import OmegaConf

from loralab.adapters import AdapterConfig, inject_adapters
from loralab.data.encoding import IGNORE_INDEX, encode_continuation
from loralab.data.options import encode_option, option_batch
from loralab.evaluation.likelihood import option_loglikelihoods
from loralab.evaluation.scoring import best_options
from loralab.models import load_model
from tests.helpers import compose_config

QUESTIONS = [
    ("Question: which is a mammal?\nAnswer:", ["a whale", "a shark", "a trout upstream", "no"]),
    ("Context: magnets\nQuestion: will they attract?\nAnswer:", ["attract", "repel"]),
    ("Question: " + "why " * 40 + "\nAnswer:", ["because", "it is so", "the"]),
]
ONE_TOKEN = [("Question: is it?\nAnswer:", ["no", "the", "a"]), ("Q: and?\nA:", ["is", "A"])]
KINDS = {
    "lora": {"kind": "lora"},
    "moslora": {"kind": "moslora"},
    "moe_lora": {"kind": "moe_lora", "num_experts": 4, "top_k": 2},
}
# Relative tolerance on a summed log-likelihood: float32 to 100 ulps (1.2e-5); under bf16
# autocast every matmul's inputs round to bf16, so to one bf16 epsilon (7.8e-3).
RTOL = {
    torch.float32: 100 * torch.finfo(torch.float32).eps,
    torch.bfloat16: torch.finfo(torch.bfloat16).eps,
}


@pytest.fixture(scope="module", params=list(KINDS))
def adapted(request):
    """The tiny test model with rank-4 adapters on every linear layer and the output head, B
    randomised (zero at init) so that the adapters change every score."""
    cfg = compose_config(["model=tiny_llama"])
    model, tokenizer = load_model(OmegaConf.to_container(cfg, resolve=True)["model"])
    torch.manual_seed(0)
    config = AdapterConfig(
        rank=4, alpha=8, dropout=0.0, target_modules=["all", "lm_head"], **KINDS[request.param]
    )
    for layer in inject_adapters(model, config):
        with torch.no_grad():
            layer.lora_B.normal_(std=0.1)
    return model, tokenizer


def precision_context(dtype):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)


def reference(model, tokenizer, questions, max_length):
    """Per option, one whole sequence (context then option, as `encode_continuation` encodes
    it): the summed log-probability of the option's tokens, and their count."""
    sums, counts = [], []
    for context, options in questions:
        for option in options:
            encoded = encode_continuation(tokenizer, context, " " + option, max_length)
            start = sum(label == IGNORE_INDEX for label in encoded.labels)
            logits = model(input_ids=torch.tensor([encoded.input_ids])).logits[0]
            log_probs = torch.log_softmax(logits.double(), dim=-1)
            tokens = encoded.input_ids[start:]
            sums.append(sum(log_probs[start + i - 1, t] for i, t in enumerate(tokens)))
            counts.append(len(tokens))
    return torch.stack(sums), torch.tensor(counts)


def scored(model, tokenizer, questions, max_length):
    encoded = [
        tuple(encode_option(tokenizer, context, " " + option, max_length) for option in options)
        for context, options in questions
    ]
    batch = option_batch(encoded, tokenizer.pad_token_id)
    return batch, option_loglikelihoods(model, batch)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bf16"])
@pytest.mark.parametrize("max_length", [512, 30], ids=["whole", "cut"])
def test_cached_scores_equal_whole_sequences(adapted, dtype, max_length):
    model, tokenizer = adapted
    with torch.no_grad(), precision_context(dtype):
        batch, scores = scored(model, tokenizer, QUESTIONS, max_length)
        sums, counts = reference(model, tokenizer, QUESTIONS, max_length)
    contexts = batch["context_input_ids"].shape[0]
    assert contexts == len(QUESTIONS) if max_length == 512 else contexts > len(QUESTIONS)
    assert batch["context_attention_mask"].sum(1).unique().numel() > 1  # right padding
    assert scores.tokens.tolist() == counts.tolist() and len(set(counts.tolist())) > 2
    torch.testing.assert_close(scores.loglik.double(), sums, rtol=RTOL[dtype], atol=0.0)
    texts = [option for _, options in QUESTIONS for option in options]  # leading space aside
    assert scores.n_bytes.tolist() == [len(text.encode()) for text in texts]
    assert scores.n_chars.tolist() == [len(text) for text in texts]

    picks = best_options(scores.loglik / scores.tokens, batch).tolist()
    means, start = sums / counts, 0
    for question, (_, options) in enumerate(QUESTIONS):
        ranked = means[start : start + len(options)].sort(descending=True)
        start += len(options)
        margin = float(ranked.values[0] - ranked.values[1])
        if margin > 2 * RTOL[dtype] * float(ranked.values[0].abs()):  # no near-tie to flip
            assert picks[question] == int(ranked.indices[0])
        else:
            assert dtype == torch.bfloat16  # float32 picks are compared for every question


def test_one_token_options_take_one_pass(adapted):
    model, tokenizer = adapted
    calls = []
    hook = model.base_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            batch, scores = scored(model, tokenizer, ONE_TOKEN, 512)
            sums, counts = reference(model, tokenizer, ONE_TOKEN, 512)
    finally:
        hook.remove()
    assert batch["option_input_ids"].shape[1] == 1 and counts.tolist() == [1] * 5
    assert len(calls) == 1 + len(sums)  # the contexts once, then only the reference's passes
    torch.testing.assert_close(scores.loglik.double(), sums, rtol=RTOL[torch.float32], atol=0.0)
