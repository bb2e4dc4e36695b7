"""Every variant, from its shipped config, trains a tiny MoE-LoRA model."""

import pytest
import torch

from loralab.adapters import AdapterConfig, inject_adapters
from loralab.optim import BUILT_IN_NAMES
from tests.helpers import compose_config, make_tiny_llama
from tests.optim.helpers import adapted_llama, backward, build_for

# Demo learning rates for 20 steps (the paper's 3e-5 / 1e-5 are for 2000 steps of a 3B model).
LR = {"sgd": 1.0, "gsgd": 1.0, "rsgd": 0.1, "grsgd": 0.1}


@pytest.mark.parametrize("name", BUILT_IN_NAMES)
def test_variant_reduces_training_loss(name):
    model = make_tiny_llama()
    adapter = AdapterConfig(kind="moe_lora", rank=4, alpha=8, dropout=0.0, num_experts=4, top_k=2)
    inject_adapters(model, adapter)
    lr = LR.get(name, 1e-2)
    shipped = compose_config([f"optimizer={name}"]).optimizer  # as loralab-train composes it
    config = dict(shipped, lr=lr, router_lr=lr)
    optimizer, scheduler = build_for(model, config, total_steps=20)
    ids = torch.randint(0, 128, (4, 16), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(20):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2, losses


@pytest.mark.parametrize("plain,rescaled", [("adamw", "gadamw"), ("radamw", "gradamw")])
def test_gate_rescaled_variants_on_plain_lora_step_exactly_as_their_plain_twins(plain, rescaled):
    """LoRA has no gate to rescale: gAdamW is AdamW there, gRAdamW RAdamW, to the bit (so the
    LoRA-optimizer grid runs only the plain twins on LoRA, docs/results.md)."""
    trained = []
    for name in (plain, rescaled):
        model = adapted_llama("lora")
        config = dict(compose_config([f"optimizer={name}"]).optimizer, lr=1e-2)
        optimizer, _ = build_for(model, config, total_steps=5)
        for step in range(5):
            backward(model, seed=step)
            optimizer.step()
            optimizer.zero_grad()
        trained.append(
            {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        )
    start = {n: p for n, p in adapted_llama("lora").named_parameters() if p.requires_grad}
    assert trained[0].keys() == trained[1].keys() == start.keys()
    assert not any(torch.equal(start[n], v) for n, v in trained[0].items())  # they did step
    for name, value in trained[0].items():
        assert torch.equal(value, trained[1][name]), name
