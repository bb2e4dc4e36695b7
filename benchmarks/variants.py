"""Every benchmarked variant, built on ONE frozen base model whose weights all variants share.

A variant is a model plus its optimizer; `make_step` turns it into a full training step:
forward, causal-LM loss on a fixed batch of random tokens (labels = inputs, so the loss is the
usual next-token cross-entropy; its value is meaningless, its cost is real), backward, optimizer
step, `zero_grad(set_to_none=True)`. Before the k-th step of any variant the RNG is seeded with
`seed + k`, so every variant draws the same dropout stream, and every variant's adapters are
built after seeding with `seed`.

Variants that differ only in the optimizer or in gate rescaling (`shares`) run on the SAME
adapted model as the variant they name, each with its own optimizer (and state), the rescaling
switch set before each of its steps: their forward and backward then touch the same memory, so
the comparison isolates the one thing that differs. (Built as separate models, two variants
with identical compute differed by up to 5% for a whole run on the shared CPU: allocator and
memory-placement luck, not compute.)

All adapters use the paper's settings: alpha 16, dropout 0.05, on q/k/v/o. Each adapter's B
factor (zero at init) is set to small random values so that every gradient, Gram matrix and
optimizer moment is non-zero, as in the middle of training.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from benchmarks.looped import inject_looped
from loralab.adapters import AdapterConfig, inject_adapters, set_gate_rescale
from loralab.optim import OptimizerConfig, build_optimizer

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
ALPHA, DROPOUT = 16.0, 0.05
LR, ROUTER_LR = 1e-5, 3e-8  # the paper's (g)RAdamW expert and router learning rates


@dataclass(frozen=True)
class Variant:
    """What to build: `kind` is frozen (no adapter), ours, peft or looped."""

    name: str
    label: str
    kind: str
    rank: int = 4
    experts: int = 1
    top_k: int = 1
    optimizer: str = "adamw"  # ours: an optimizer config name (adamw, gadamw, radamw, ...)
    shares: str | None = None  # ours: train the model of this variant, with its own optimizer

    def describe(self) -> dict:
        return {
            "label": self.label,
            "kind": self.kind,
            "rank": self.rank,
            "experts": self.experts,
            "top_k": self.top_k,
            "optimizer": self.optimizer,
            "shares_model_of": self.shares,
        }


STEP_VARIANTS = (
    Variant("frozen", "frozen base (lower bound)", "frozen"),
    Variant("lora_r4", "LoRA r=4 (ours)", "ours", rank=4),
    Variant("lora_r80", "LoRA r=80 (ours)", "ours", rank=80),
    Variant("peft_lora_r4", "LoRA r=4 (PEFT)", "peft", rank=4),
    Variant("moe_lora", "MoE-LoRA(20,10,4)", "ours", rank=4, experts=20, top_k=10),
    Variant(
        "moe_lora_g",
        "MoE-LoRA(20,10,4) gate-rescaled",
        "ours",
        rank=4,
        experts=20,
        top_k=10,
        optimizer="gadamw",
        shares="moe_lora",
    ),
    Variant(
        "moe_lora_radamw",
        "MoE-LoRA(20,10,4) RAdamW",
        "ours",
        rank=4,
        experts=20,
        top_k=10,
        optimizer="radamw",
        shares="moe_lora",
    ),
    Variant("looped", "looped MoE-LoRA(20,10,4)", "looped", rank=4, experts=20, top_k=10),
)


@dataclass
class Built:
    variant: Variant
    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    trainable: int
    gate_rescale: bool | None = None  # ours with a router: set on the adapters before each step
    forward: Callable = field(init=False)

    def __post_init__(self):
        self.forward = self.model


def share_weights(base: nn.Module) -> nn.Module:
    """A copy of `base` whose parameters ARE the base's (frozen, so sharing them is safe)."""
    return copy.deepcopy(base, memo={id(p): p for p in base.parameters()})


def build(variant: Variant, base: nn.Module, seed: int, shared: Built | None = None) -> Built:
    """`shared`: the Built of `variant.shares` (required exactly when that is set)."""
    torch.manual_seed(seed)
    if variant.shares is not None:
        if shared is None or shared.variant.name != variant.shares or variant.kind != "ours":
            raise ValueError(f"{variant.name} shares {variant.shares!r}: pass that Built")
        return _with_optimizer(variant, shared.model)
    model = share_weights(base)
    optimizer = None
    if variant.kind == "frozen":
        # Gradients only w.r.t. activations: the embeddings' output is a leaf that needs one.
        model.get_input_embeddings().register_forward_hook(
            lambda _module, _inputs, out: out.detach().requires_grad_(True)
        )
    elif variant.kind == "ours":
        kind = "lora" if variant.experts == 1 else "moe_lora"
        config = AdapterConfig(
            kind=kind,
            rank=variant.rank,
            alpha=ALPHA,
            dropout=DROPOUT,
            num_experts=variant.experts,
            top_k=variant.top_k,
            target_modules=list(TARGETS),
        )
        inject_adapters(model, config)
        _randomise_b(model, seed)
        return _with_optimizer(variant, model.train())
    elif variant.kind == "peft":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=variant.rank, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=list(TARGETS)
        )
        model = get_peft_model(model, config)
        _randomise_b(model, seed)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    elif variant.kind == "looped":
        layers = inject_looped(
            model,
            TARGETS,
            experts=variant.experts,
            top_k=variant.top_k,
            rank=variant.rank,
            alpha=ALPHA,
            dropout=DROPOUT,
        )
        _randomise_b(model, seed)
        experts = [
            p for layer in layers for m in (layer.lora_A, layer.lora_B) for p in m.parameters()
        ]
        routers = [layer.gate.weight for layer in layers]
        optimizer = torch.optim.AdamW(
            [{"params": experts}, {"params": routers, "lr": ROUTER_LR}], lr=LR
        )
    else:
        raise ValueError(f"unknown variant kind {variant.kind!r}")
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Built(variant, model, optimizer, trainable)


def _with_optimizer(variant: Variant, model: nn.Module) -> Built:
    config = OptimizerConfig.from_mapping(
        {"name": variant.optimizer, "lr": LR, "router_lr": ROUTER_LR}
    )
    set_gate_rescale(model, config.gate_rescale)  # a shared model: this variant's switch
    optimizer, _ = build_optimizer(model, config)
    rescale = config.gate_rescale if variant.experts > 1 else None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Built(variant, model, optimizer, trainable, rescale)


def make_step(built: Built, ids: torch.Tensor, seed: int) -> Callable[[], None]:
    """One full training step on `ids`; the k-th call of any variant seeds with seed + k."""
    counter = itertools.count()
    forward, optimizer, rescale = built.forward, built.optimizer, built.gate_rescale

    def step() -> None:
        if rescale is not None:
            set_gate_rescale(built.model, rescale)
        torch.manual_seed(seed + next(counter))
        loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return step


def static_bytes(built: Built) -> int:
    """Bytes held between steps: weights, buffers, adapter parameters, optimizer state."""
    tensors = [*built.model.parameters(), *built.model.buffers()]
    if built.optimizer is not None:
        for state in built.optimizer.state.values():
            tensors += [v for v in state.values() if torch.is_tensor(v)]
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


def _randomise_b(model: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and "lora_B" in name.split("."):
                noise = torch.randn(param.shape, generator=generator) * 0.02
                param.copy_(noise.to(param.device, param.dtype))
