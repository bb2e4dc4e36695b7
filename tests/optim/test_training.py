"""Every variant, from its shipped config, trains a tiny MoE-LoRA model."""

import pytest
import torch

from loralab.adapters import AdapterConfig, inject_adapters
from loralab.optim import BUILT_IN_NAMES
from tests.helpers import compose_config, make_tiny_llama
from tests.optim.helpers import build_for

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
