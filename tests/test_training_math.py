"""After real training through the Lightning pipeline: base frozen and unchanged, only the
named modules wrapped, and each wrapped layer equals W0 + s * B A (explicit check)."""

import torch
from safetensors.torch import load_file

from loralab.adapters import AdapterLinear
from loralab.cli.train import run
from loralab.models import load_model
from tests.helpers import compose_config


def test_lora_training_updates_only_adapters(tmp_path):
    overrides = [
        "model=tiny_llama",
        "trainer.precision=32-true",
        "adapter=lora",
        "adapter.dropout=0.0",
        "adapter.target_modules=[q_proj,v_proj]",
        "optimizer=adamw",
        "optimizer.lr=1e-2",
        "logger=csv",
        "trainer.max_steps=8",
        "trainer.val_check_interval=8",
        "evaluation.before_training=false",
        "task.max_examples.train=64",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
    ]
    cfg = compose_config(overrides)
    summary, model = run(cfg, tmp_path)
    assert summary["steps"] == 8

    fresh, _ = load_model(cfg.model)  # the same seed-fixed random init, untouched
    fresh_params = dict(fresh.named_parameters())
    adapter = load_file(tmp_path / "adapter" / "adapter.safetensors")
    wrapped = {k.rsplit(".lora_A", 1)[0] for k in adapter if k.endswith("lora_A")}
    assert wrapped == {
        f"model.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")
    }

    for name, module in model.named_modules():
        if isinstance(module, AdapterLinear):
            w0 = fresh_params[f"{name}.weight"]
            assert torch.equal(module.base.weight, w0), "frozen base weight changed"
            assert not module.base.weight.requires_grad
            A, B = module.lora_A[0], module.lora_B[0]
            assert B.abs().sum() > 0, "adapter did not train"
            x = torch.randn(5, w0.shape[1])
            expected = x @ (w0 + module.scale * B @ A).T
            torch.testing.assert_close(module.eval()(x), expected, rtol=1e-5, atol=1e-5)
    for name, param in model.named_parameters():
        if "lora_" not in name:
            assert not param.requires_grad
            assert torch.equal(param, fresh_params[name.replace(".base.", ".")])

    # The saved adapter reproduces the trained model exactly on a fresh base.
    from loralab.adapters import load_adapter

    reloaded, _ = load_model(cfg.model)
    load_adapter(reloaded, tmp_path / "adapter")
    ids = torch.randint(0, 100, (2, 12))
    torch.testing.assert_close(reloaded(ids).logits, model.eval()(ids).logits, rtol=0, atol=0)
