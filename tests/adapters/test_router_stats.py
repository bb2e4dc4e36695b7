"""Router statistics and the load-balancing loss, checked against hand computations."""

import pytest
import torch
from torch import nn

from loralab.adapters import (
    AdapterConfig,
    AdapterLinear,
    adapter_modules,
    auxiliary_loss,
    collect_router_stats,
    enable_router_stats,
    inject_adapters,
)
from tests.helpers import compose_config


def test_layer_stats_and_aux_loss_by_hand():
    torch.manual_seed(0)
    config = AdapterConfig(kind="moe_lora", rank=2, num_experts=4, top_k=2, load_balance_coef=0.1)
    layer = AdapterLinear(nn.Linear(8, 8), config)
    layer.track_router_stats = True
    x = torch.randn(3, 5, 8)
    layer(x)
    probs = torch.softmax(x.reshape(15, 8) @ layer.router.weight.T, dim=-1)
    chosen = probs.topk(2).indices
    load = torch.stack([(chosen == i).sum() for i in range(4)]) / 30
    torch.testing.assert_close(layer.router_load, load)
    assert layer.router_load.sum().item() == pytest.approx(1.0)
    entropy = -(probs * probs.log()).sum(-1).mean()
    torch.testing.assert_close(layer.router_entropy, entropy)
    torch.testing.assert_close(layer.aux_loss, 4 * (load * probs.mean(0)).sum())
    layer.aux_loss.backward()
    assert layer.router.weight.grad.abs().sum() > 0


def test_model_summary_and_auxiliary_loss(tiny_llama):
    config = AdapterConfig(
        kind="moe_lora",
        rank=2,
        num_experts=4,
        top_k=1,
        load_balance_coef=0.5,
        target_modules="q_proj",
    )
    layers = inject_adapters(tiny_llama, config)
    assert collect_router_stats(tiny_llama) == {}
    enable_router_stats(tiny_llama)
    tiny_llama(torch.randint(0, 128, (1, 3)))
    stats = collect_router_stats(tiny_llama)
    loads = [layer.router_load for layer in layers]
    assert stats["router/0.q_proj/max_load"] == pytest.approx(loads[0].max().item())
    assert stats["router/1.q_proj/entropy"] == pytest.approx(layers[1].router_entropy.item())
    imbalance = sum(load.max().item() * 4 for load in loads) / 2
    assert stats["router/load_imbalance"] == pytest.approx(imbalance)
    assert stats["router/dead_experts"] == sum(int((load == 0).sum()) for load in loads) >= 2
    total = auxiliary_loss(tiny_llama)
    torch.testing.assert_close(total, 0.5 * (layers[0].aux_loss + layers[1].aux_loss))
    summary = collect_router_stats(tiny_llama, per_layer=False)
    assert summary == {k: v for k, v in stats.items() if k.count("/") == 1} and len(summary) == 3
    enable_router_stats(tiny_llama, on=False)
    assert collect_router_stats(tiny_llama) == {}


def test_no_auxiliary_loss_without_coefficient(tiny_llama):
    inject_adapters(tiny_llama, AdapterConfig(kind="moe_lora", num_experts=2))
    tiny_llama(torch.randint(0, 128, (1, 3)))
    assert auxiliary_loss(tiny_llama) is None


def test_per_layer_router_columns_through_the_config(tmp_path):
    """evaluation.router_stats_per_layer=true adds entropy and max load per adapted layer."""
    import pandas as pd

    from loralab.cli.train import run

    overrides = [
        "experiment=smoke",
        "logger=csv",
        "evaluation.router_stats_per_layer=true",
        "evaluation.before_training=false",
        "trainer.max_steps=1",
        "task.max_examples.train=8",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
    ]
    cfg = compose_config(overrides)
    _, model = run(cfg, tmp_path)
    columns = set(pd.read_csv(tmp_path / "metrics.csv").columns)
    per_layer = {c for c in columns if c.startswith("router/") and c.count("/") == 2}
    assert len(per_layer) == 2 * len(adapter_modules(model)) > 0
