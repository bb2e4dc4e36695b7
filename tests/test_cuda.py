"""The adapter and optimizer math on a CUDA device, against the CPU references of the other
tests. Skipped where no GPU is present (CI has none); `scripts/gpu_check.sh` runs them."""

import copy

import pytest
import torch

from loralab.adapters import adapter_modules
from loralab.cli.train import run
from loralab.optim import BUILT_IN_NAMES, OPTIMIZER_NAMES
from tests.adapters.test_layer import D_IN, make_layer, reference, value_and_grads
from tests.helpers import compose_config
from tests.optim.helpers import adapted_llama, build_for

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
CUDA = torch.device("cuda")


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("mixer", [False, True])
def test_fused_experts_on_cuda_match_the_per_expert_loop(rescale, mixer):
    """float32 on the GPU against the float64 per-expert loop on the CPU: values and every
    gradient (input, A, B, mixer, router)."""
    layer = make_layer(experts=5, top_k=2, mixer=mixer, rescale=rescale)
    x = torch.randn(4, 7, D_IN, dtype=torch.float64)
    want, want_grads = value_and_grads(layer, x, lambda t: reference(layer, t, rescale))
    gpu = copy.deepcopy(layer).to(CUDA, torch.float32)
    got, got_grads = value_and_grads(gpu, x.to(CUDA, torch.float32), gpu)
    torch.testing.assert_close(got.cpu().double(), want, rtol=1e-4, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g.cpu().double(), w, rtol=1e-4, atol=1e-5)


def test_fused_backward_under_cuda_bf16_autocast_tracks_float32():
    """bf16-mixed (the GPU trainer's precision): float32 adapter weights, bf16 compute, and
    gradients within bf16 rounding of the float32 ones."""
    layer = make_layer(experts=8, top_k=2, rescale=True, dtype=torch.float32).to(CUDA)
    x = torch.randn(16, 32, D_IN, device=CUDA)
    want, want_grads = value_and_grads(layer, x, layer)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got, got_grads = value_and_grads(layer, x, layer)
    assert got.dtype == torch.bfloat16 and layer.lora_A.dtype == torch.float32
    for g, w in zip((got, *got_grads), (want, *want_grads), strict=True):
        relative = (g.float() - w).norm() / w.norm()
        assert relative < 2e-2, relative


@pytest.mark.parametrize("name", BUILT_IN_NAMES)
def test_optimizer_step_on_cuda_matches_cpu(name):
    """Three steps of every variant (batched r x r solves, gate rescaling, router group) give the
    same adapter weights on the GPU as on the CPU, in float32."""
    cpu_model = adapted_llama("moe_lora")
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    config = {"name": name, "lr": 1e-2, "router_lr": 1e-3, "delta": 1e-6}
    for model in (cpu_model, gpu_model):
        optimizer, _ = build_for(model, config)
        device = next(model.parameters()).device
        for step in range(3):
            ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(step))
            ids = ids.to(device)
            optimizer.zero_grad()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
    gpu_params = dict(gpu_model.named_parameters())
    for key, param in cpu_model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(gpu_params[key].cpu(), param, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", [*OPTIMIZER_NAMES, "loraplus"])  # lorarite: no mixer
def test_foreach_updates_on_cuda_match_the_per_tensor_loop(name):
    """The multi-tensor kernels on the GPU give the weights of the one-tensor-at-a-time loop
    (fused CUDA kernels may round differently: float32 tolerance, not bitwise)."""
    looped_model = adapted_llama("moe_moslora").to(CUDA)
    fused_model = copy.deepcopy(looped_model)
    config = {"name": name, "lr": 1e-2, "router_lr": 1e-3, "weight_decay": 0.1, "momentum": 0.9}
    for model, foreach in ((looped_model, False), (fused_model, True)):
        optimizer, _ = build_for(model, config | {"foreach": foreach})
        for step in range(3):
            ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(step))
            optimizer.zero_grad()
            model(input_ids=ids.to(CUDA), labels=ids.to(CUDA)).loss.backward()
            optimizer.step()
    fused = dict(fused_model.named_parameters())
    for key, param in looped_model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(fused[key], param, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("adapter", ["lora", "moslora", "moe_lora"])
@pytest.mark.parametrize("optimizer", BUILT_IN_NAMES)
def test_bf16_training_on_the_gpu_trainer(tmp_path, adapter, optimizer):
    """The whole pipeline (trainer=gpu: one GPU, bf16-mixed) for each adapter x optimizer: a
    finite loss at every step and adapters that moved."""
    if optimizer == "lorarite" and adapter == "moslora":
        pytest.skip("LoRA-RITE does not apply to MoSLoRA (refused: test_config_compose.py)")
    overrides = [
        "experiment=smoke",
        "trainer=gpu",
        "logger=csv",
        f"adapter={adapter}",
        f"optimizer={optimizer}",
        "optimizer.lr=1e-2",
        "trainer.max_steps=6",
        "trainer.val_check_interval=6",
        "evaluation.before_training=false",
        "task.max_examples.train=48",
        "task.max_examples.validation=8",
        "task.max_examples.test=8",
    ]
    cfg = compose_config(overrides)
    allocations = torch.cuda.memory_stats().get("allocation.all.allocated", 0)
    summary, model = run(cfg, tmp_path)
    assert summary["steps"] == 6
    ran = torch.cuda.memory_stats()["allocation.all.allocated"] - allocations
    assert ran > 1000, f"only {ran} CUDA allocations: the run did not train on the GPU"
    layers = adapter_modules(model)  # Lightning hands the model back on the CPU
    assert layers
    assert all(layer.lora_B.abs().sum() > 0 for _, layer in layers), "adapters did not train"
    losses = [row["train/loss"] for row in _rows(tmp_path / "metrics.csv") if row["train/loss"]]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(float(v))) for v in losses)


def _rows(path):
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))
