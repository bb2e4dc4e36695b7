"""Plain LoRA: our Riemannian optimizers match peft's independent implementation."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.optimizers import create_riemannian_optimizer

from loralab.adapters import adapter_modules
from tests.helpers import make_tiny_llama

from .helpers import adapted_llama, backward, build_for, snapshot

DELTA = 1e-6


@pytest.mark.parametrize(
    ("name", "base", "kwargs"),
    [
        ("rsgd", torch.optim.SGD, {}),
        ("radamw", torch.optim.AdamW, {"eps": 1e-8, "weight_decay": 0.01}),
    ],
)
def test_matches_peft_create_riemannian_optimizer(name, base, kwargs):
    ours = adapted_llama("lora")
    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    theirs = get_peft_model(make_tiny_llama(), config)
    with torch.no_grad():
        for module_name, layer in adapter_modules(ours):
            lora = theirs.base_model.model.get_submodule(module_name)
            lora.lora_A["default"].weight.copy_(layer.lora_A[0])
            lora.lora_B["default"].weight.copy_(layer.lora_B[0])
    lr, start = 1e-3, snapshot(ours)
    our_optimizer, _ = build_for(ours, {"name": name, "lr": lr, "delta": DELTA} | kwargs)
    peft_optimizer = create_riemannian_optimizer(theirs, base, lr=lr, reg=DELTA, **kwargs)
    for step in range(3):
        backward(ours, seed=step)
        backward(theirs, seed=step)
        our_optimizer.step()
        peft_optimizer.step()
        our_optimizer.zero_grad()
        peft_optimizer.zero_grad()
    for module_name, layer in adapter_modules(ours):
        lora = theirs.base_model.model.get_submodule(module_name)
        torch.testing.assert_close(
            layer.lora_A[0], lora.lora_A["default"].weight, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            layer.lora_B[0], lora.lora_B["default"].weight, atol=1e-6, rtol=0
        )
    moved = max((p - start[n]).abs().max() for n, p in snapshot(ours).items())
    assert moved > 1e-4  # far above the tolerance: the comparison is not vacuous
