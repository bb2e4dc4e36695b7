"""`optimizer=lorarite` against a transcription of LoRA-RITE (Yen et al., ICLR 2025, arXiv
2410.20625, Algorithm 1, with the exponential moments of its experiments; docs/methods.md,
"LoRA+ and LoRA-RITE"), written here pair by pair in float64: one (A_i, B_i) matrix pair per
expert, an explicit QR and inverse per factor, the paper's names (unmagnified gradient, basis
change P, second moment V, escaped mass rho, first moment M). Nothing is shared with
src/loralab/optim/lorarite.py.
"""

import copy
import math

import pytest
import torch

from loralab.adapters import adapter_modules
from loralab.optim import OptimizerConfig
from tests.helpers import compose_config

from .helpers import adapted_llama, backward, build_for, snapshot

STEPS = 4


class TranscribedLoRARITE:
    """The paper's notation: the adapter adds Z = L R^T with L = B_i (d_out x r) and R = A_i^T
    (d_in x r); each factor is updated with the other one's QR decomposition."""

    def __init__(self, lr, betas, eps, weight_decay, escaped_mass, clip, bias_correction):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.escaped_mass, self.clip, self.bias_correction = escaped_mass, clip, bias_correction
        self.state = {}

    def decay(self, beta, t):
        if not self.bias_correction:
            return beta
        return beta * (1 - beta ** (t - 1)) / (1 - beta**t)

    def factor_step(self, key, value, grad, other, scale):
        """The new value of one factor (value, its gradient, the other factor of its pair)."""
        beta1, beta2 = self.betas
        rows, rank = value.shape
        basis, upper = torch.linalg.qr(other)
        upper_inv = torch.linalg.inv(upper)
        unmagnified = scale * grad @ upper_inv
        state = self.state.setdefault(key, {"t": 0})
        state["t"] += 1
        t = state["t"]
        b1, b2 = self.decay(beta1, t), self.decay(beta2, t)
        gram = unmagnified.T @ unmagnified / rows
        if t == 1:
            second = (1 - b2) * gram
            rho = 0.0
            first = torch.zeros_like(value)
        else:
            change = basis.T @ state["basis"]
            old = state["V"]
            moved = change @ old @ change.T
            rho = state["rho"]
            if self.escaped_mass:
                escaped = torch.linalg.eigvalsh(old) - torch.linalg.eigvalsh(moved)
                rho = rho + max(escaped.max().item(), 0.0)
            rho = b2 * rho
            second = b2 * moved + (1 - b2) * gram
            first = b1 * state["M"] @ change.T
        second = (second + second.T) / 2
        eigenvalues, eigenvectors = torch.linalg.eigh(second + rho * torch.eye(rank).double())
        inverse_root = torch.diag(1 / (eigenvalues.clamp(min=0).sqrt() + self.eps))
        step = unmagnified @ eigenvectors @ inverse_root @ eigenvectors.T
        first = first + (1 - b1) * step
        state.update(basis=basis, V=second, rho=rho, M=first)
        return value * (1 - self.lr * self.weight_decay) - self.lr * first @ upper_inv.T

    @torch.no_grad()
    def step(self, layers):
        pairs = []  # (key, L, R, grad L, grad R), every expert of every layer
        for name, layer in layers:
            for i in range(layer.num_experts):
                pairs.append(
                    (
                        (name, i),
                        layer.lora_B[i].clone(),
                        layer.lora_A[i].T.clone(),
                        layer.lora_B.grad[i],
                        layer.lora_A.grad[i].T,
                    )
                )
        scale = 1.0
        if self.clip:  # the total norm of every unmagnified gradient
            total = 0.0
            for _, left, right, grad_left, grad_right in pairs:
                total += (grad_left @ torch.linalg.inv(torch.linalg.qr(right)[1])).square().sum()
                total += (grad_right @ torch.linalg.inv(torch.linalg.qr(left)[1])).square().sum()
            total = math.sqrt(total)
            scale = min(1.0, self.clip / total)
        new = {}
        for key, left, right, grad_left, grad_right in pairs:
            new[key] = (
                self.factor_step((*key, "B"), left, grad_left, right, scale),
                self.factor_step((*key, "A"), right, grad_right, left, scale),
            )
        for name, layer in layers:
            for i in range(layer.num_experts):
                layer.lora_B[i].copy_(new[(name, i)][0])
                layer.lora_A[i].copy_(new[(name, i)][1].T)


SETTINGS = {
    "paper": {},
    "decay_clip_plain_betas": {
        "weight_decay": 0.1,
        "unmagnified_clip": 0.05,  # below the gradients' norm here: the clip acts
        "bias_correction": False,
        "betas": [0.8, 0.95],
    },
    "no_escaped_mass": {"escaped_mass": False},
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("kind", ["lora", "moe_lora"])
def test_lorarite_equals_the_papers_algorithm_pair_by_pair(kind, setting):
    # float64 throughout: over several steps the gates and the basis changes feed rounding
    # differences back, so float32 would measure that, not the rule
    ours = adapted_llama(kind).double()
    theirs, initial = copy.deepcopy(ours), snapshot(ours)
    defaults = OptimizerConfig.from_mapping({"name": "lorarite", "lr": 1e-3})
    # router_lr 0: the router stays as it is in both models (its own group is tested below)
    config = {"name": "lorarite", "lr": 1e-2, "router_lr": 0.0}
    config |= SETTINGS[setting]
    optimizer, _ = build_for(ours, config)
    cfg = OptimizerConfig.from_mapping(config)
    reference = TranscribedLoRARITE(
        cfg.lr,
        cfg.betas,
        cfg.eps,
        cfg.weight_decay,
        cfg.escaped_mass,
        cfg.unmagnified_clip,
        cfg.bias_correction,
    )
    assert defaults.escaped_mass and defaults.unmagnified_clip is None  # the paper's algorithm
    layers = adapter_modules(theirs)
    # float64 rounding, amplified by the r x r inverses (condition numbers of R and of V + rho
    # I reach ~1e3 here) and by the steps
    tolerance = 1e6 * torch.finfo(torch.float64).eps
    for step in range(STEPS):
        for model in (ours, theirs):
            model.zero_grad()
            backward(model, seed=step)
        if setting == "decay_clip_plain_betas" and step == 0:
            assert _unmagnified_norm(layers) > 0.05
        optimizer.step()
        reference.step(layers)
        mine = snapshot(ours)
        for name, value in snapshot(theirs).items():
            torch.testing.assert_close(mine[name], value, rtol=tolerance, atol=tolerance, msg=name)
    for name, value in snapshot(ours).items():
        assert torch.equal(value, initial[name]) == name.endswith("router.weight"), name


def test_the_router_keeps_its_own_group_and_base_rule():
    model = adapted_llama("moe_lora")
    optimizer, _ = build_for(model, {"name": "lorarite", "lr": 1e-2, "router_lr": 1e-3})
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"experts", "router"}
    assert groups["experts"]["rule"] == "lorarite" and groups["router"]["rule"] is None
    assert groups["router"]["base"] == "adamw" and groups["router"]["lr"] == 1e-3
    routers = [m.router.weight for _, m in adapter_modules(model)]
    assert groups["router"]["params"] == routers
    twin = copy.deepcopy(model)
    reference = torch.optim.AdamW(
        [m.router.weight for _, m in adapter_modules(twin)], lr=1e-3, eps=1e-6, weight_decay=0
    )
    for net in (model, twin):
        backward(net)
    torch.nn.utils.clip_grad_norm_(reference.param_groups[0]["params"], 1.0)  # router_clip
    optimizer.step()
    reference.step()
    for ours, theirs in zip(routers, reference.param_groups[0]["params"], strict=True):
        torch.testing.assert_close(ours, theirs)


def _unmagnified_norm(layers) -> float:
    total = 0.0
    for _, layer in layers:
        for i in range(layer.num_experts):
            left, right = layer.lora_B[i].detach(), layer.lora_A[i].detach().T
            total += (
                (layer.lora_B.grad[i] @ torch.linalg.inv(torch.linalg.qr(right)[1])).square().sum()
            )
            total += (
                (layer.lora_A.grad[i].T @ torch.linalg.inv(torch.linalg.qr(left)[1])).square().sum()
            )
    return math.sqrt(total)


def test_from_b_zero_only_b_moves_first_then_both():
    """At initialisation B = 0: A's unmagnified gradient G_A R_B^-1 is zero (the pseudo-inverse
    of R_B = 0), so the first step moves B alone; nothing is non-finite."""
    model = adapted_llama("moe_lora")
    for _, layer in adapter_modules(model):
        layer.lora_B.data.zero_()
    optimizer, _ = build_for(model, {"name": "lorarite", "lr": 1e-2, "router_lr": 0.0})
    before = snapshot(model)
    backward(model, seed=0)
    optimizer.step()
    after = snapshot(model)
    for name, value in after.items():
        assert torch.isfinite(value).all(), name
        if name.endswith("lora_A"):
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)
        elif name.endswith("lora_B"):
            assert value.abs().sum() > 0, name
    optimizer.zero_grad()
    backward(model, seed=1)
    optimizer.step()
    moved = [n for n, v in snapshot(model).items() if n.endswith("lora_A") and v.ne(after[n]).any()]
    assert moved


def test_state_round_trips_and_resumes_exactly(tmp_path):
    model = adapted_llama("moe_lora")
    twin = copy.deepcopy(model)
    config = {"name": "lorarite", "lr": 1e-2, "router_lr": 1e-3}
    first, _ = build_for(model, config)
    for step in range(2):
        first.zero_grad()
        backward(model, seed=step)
        first.step()
    torch.save(first.state_dict(), tmp_path / "optimizer.pt")
    saved = torch.load(tmp_path / "optimizer.pt", weights_only=True)
    twin.load_state_dict(model.state_dict())
    second, _ = build_for(twin, config)
    second.load_state_dict(saved)
    for net, optimizer in ((model, first), (twin, second)):
        optimizer.zero_grad()
        backward(net, seed=2)
        optimizer.step()
    for (name, ours), theirs in zip(snapshot(model).items(), snapshot(twin).values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("kind", ["moslora", "moe_moslora"])
def test_adapters_with_a_mixer_are_refused_naming_optimizer_and_adapter(kind):
    with pytest.raises(ValueError, match=r"optimizer=lorarite .*adapter.kind=moslora"):
        build_for(adapted_llama(kind), {"name": "lorarite", "lr": 1e-3})


def test_lorarite_config_ships_the_papers_algorithm_and_the_adamw_family_lr():
    """(The shipped YAML's form and keys: tests/optim/test_build.py, for every built-in name.)"""
    composed = compose_config(["optimizer=lorarite"]).optimizer
    cfg = OptimizerConfig.from_mapping(composed)
    assert cfg.rule == "lorarite" and cfg.base == "adamw" and not cfg.riemannian
    assert cfg.lr == composed.family_lr.adamw
    assert cfg.escaped_mass is True and cfg.unmagnified_clip is None
    assert cfg.betas == (0.9, 0.999) and cfg.eps == 1e-6


@pytest.mark.parametrize(
    "key, bad, allowed",
    [
        ("escaped_mass", "yes", "true or false"),
        ("escaped_mass", 1, "true or false"),
        ("unmagnified_clip", 0, r"null \(no clipping\) or a finite number > 0"),
        ("unmagnified_clip", -1.0, r"null \(no clipping\) or a finite number > 0"),
        ("unmagnified_clip", float("nan"), r"null \(no clipping\) or a finite number > 0"),
    ],
)
def test_a_bad_lorarite_setting_is_refused_naming_key_value_and_range(key, bad, allowed):
    with pytest.raises(ValueError, match=rf"optimizer.{key}=.* is invalid: must be {allowed}"):
        OptimizerConfig.from_mapping({"name": "lorarite", "lr": 1e-3, key: bad})
