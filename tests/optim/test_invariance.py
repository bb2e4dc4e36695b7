"""Transformation invariance (Yen et al., ICLR 2025, arXiv 2410.20625; docs/methods.md, "LoRA+
and LoRA-RITE"), as a property of each variant's trajectory.

Replace every expert's pair (A_i, B_i) by (S_i A_i, B_i S_i^-1) for an invertible r x r S_i:
the adapter's product B_i A_i, hence the model and every loss, is unchanged. A variant is
invariant when the products stay equal, step after step, in both parameterisations. What
holds, in exact arithmetic (float64 here, so equal means equal to rounding):

- lorarite: invariant for every invertible S and every step, moments, escaped mass and
  decoupled weight decay included (each factor's update transforms with it: dA' = S dA,
  dB' = dB S^-1, so the second-order term dB dA is unchanged too).
- rsgd / grsgd (Riemannian SGD, Zhang & Pilanci's scaled GD): invariant for every S and every
  step as delta -> 0 (here delta = 1e-14), heavy-ball momentum and L2 weight decay included:
  (B^T B)^-1 G_A transforms as S (B^T B)^-1 G_A. With gate rescaling the gradients keep that
  form (each token's weight sqrt(g_i) is the same scalar in both), so grsgd is invariant too.
- radamw / gradamw (Riemannian AdamW): NOT invariant, not even at the first step or for a
  scalar S = c I: the preconditioned gradient transforms as S G', but AdamW's element-wise
  m / sqrt(v) does not (its first step is about lr sign(G'), the same for c G' as for G').
- adamw, gadamw, loraplus: not invariant (scale alone already changes the update).
- Every variant is invariant under a signed permutation S (relabelling or negating the rank
  components): an element-wise rule commutes with it. That is the only invariance AdamW has.
"""

import copy

import pytest
import torch

from loralab.adapters import adapter_modules

from .helpers import adapted_llama, backward, build_for

STEPS = 3
LR = {"rsgd": 5e-2, "grsgd": 5e-2}  # others 1e-2
SETTINGS = {"rsgd": {"momentum": 0.9, "weight_decay": 0.01}, "grsgd": {"momentum": 0.9}}
# float64 rounding amplified by the r x r inverses of the transformed factors (S has condition
# number up to e^2 and the factors' Gram matrices ~1e2) and by the steps
EQUAL = 1e6 * torch.finfo(torch.float64).eps
VISIBLY_DIFFERENT = 1e-2


def _orthogonal(rank: int, generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(rank, rank, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def general(rank, generator):
    """A random invertible matrix: rotation, scales in [e^-1, e], rotation."""
    scales = torch.exp(2 * torch.rand(rank, generator=generator, dtype=torch.float64) - 1)
    return _orthogonal(rank, generator) @ torch.diag(scales) @ _orthogonal(rank, generator)


def scalar(rank, generator):
    return 3.0 * torch.eye(rank, dtype=torch.float64)


def signed_permutation(rank, generator):
    permutation = torch.eye(rank, dtype=torch.float64)[torch.randperm(rank, generator=generator)]
    signs = torch.where(torch.rand(rank, generator=generator) < 0.5, -1.0, 1.0)
    return permutation * signs.to(torch.float64)


def _transformed(model: torch.nn.Module, draw) -> torch.nn.Module:
    """A copy with each expert's (A_i, B_i) replaced by (S_i A_i, B_i S_i^-1)."""
    twin = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, layer in adapter_modules(twin):
            for i in range(layer.num_experts):
                s = draw(layer.rank, generator)
                layer.lora_A[i] = s @ layer.lora_A[i]
                layer.lora_B[i] = layer.lora_B[i] @ torch.linalg.inv(s)
    return twin


def _products(model) -> torch.Tensor:
    return torch.cat([(m.lora_B @ m.lora_A).flatten() for _, m in adapter_modules(model)])


def trajectory_gap(name: str, kind: str, draw, steps: int = STEPS) -> float:
    """Largest ||P'_t - P_t|| / ||P_t - P_0|| over the steps t, P the stacked products B_i A_i
    of the model and P' of its transformed twin, each trained by `name` on the same batches."""
    model = adapted_llama(kind).double()
    twin = _transformed(model, draw)
    start = _products(model)
    torch.testing.assert_close(_products(twin), start, rtol=EQUAL, atol=EQUAL)  # same function
    config = {"name": name, "lr": LR.get(name, 1e-2), "router_lr": 1e-3, "delta": 1e-14}
    config |= SETTINGS.get(name, {})
    optimizers = [build_for(net, config)[0] for net in (model, twin)]
    gap = 0.0
    for step in range(steps):
        for net, optimizer in zip((model, twin), optimizers, strict=True):
            optimizer.zero_grad()
            backward(net, seed=step)
            optimizer.step()
        ours, theirs = _products(model), _products(twin)
        gap = max(gap, ((theirs - ours).norm() / (ours - start).norm()).item())
    return gap


@pytest.mark.parametrize(
    "name, kind",
    [("lorarite", "lora"), ("lorarite", "moe_lora"), ("rsgd", "lora"), ("grsgd", "moe_lora")],
)
@pytest.mark.parametrize("draw", [general, scalar])
def test_invariant_variants_keep_the_product_for_any_invertible_s(name, kind, draw):
    assert trajectory_gap(name, kind, draw) < EQUAL


@pytest.mark.parametrize(
    "name, kind",
    [
        ("adamw", "lora"),
        ("loraplus", "lora"),
        ("radamw", "lora"),
        ("gadamw", "moe_lora"),
        ("gradamw", "moe_lora"),
    ],
)
@pytest.mark.parametrize("draw", [general, scalar])
def test_adamw_family_is_not_invariant_visibly(name, kind, draw):
    assert trajectory_gap(name, kind, draw) > VISIBLY_DIFFERENT


def test_radamw_is_not_invariant_even_at_its_first_step():
    """RAdamW's first bias-corrected step is lr G' / (|G'| + eps), about lr sign(G'): for
    A' = 3 A the product's change is a third of the untransformed one's, not equal."""
    assert trajectory_gap("radamw", "lora", scalar, steps=1) > 0.5


@pytest.mark.parametrize("name", ["adamw", "radamw", "loraplus", "lorarite", "rsgd"])
def test_every_variant_is_invariant_under_a_signed_permutation(name):
    assert trajectory_gap(name, "moe_lora", signed_permutation) < EQUAL
