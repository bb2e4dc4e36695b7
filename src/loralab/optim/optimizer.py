"""`AdapterOptimizer`: SGD or AdamW, plain or Riemannian-preconditioned, with a router group;
or LoRA+ or LoRA-RITE for the experts.

Two parameter groups (LoRA+ adds a third, below; a group is left out when it has no trainable
parameter):

- `experts` (every `lora_A`, `lora_B`, `mixer`): base `sgd` or `adamw`; with `riemannian`, the
  gradients of A and B are replaced by their preconditioned versions (see `preconditioner`)
  before the base update: RSGD is `p -= lr * G'`, RAdamW builds both moments from G'. The
  mixer's gradient is used raw. Experts are never clipped.
- `router` (every router weight): its own base optimizer and learning rate, never
  preconditioned; its gradients are clipped to total norm `clip` inside `step()` (None or 0:
  no clipping), as the reference does for the gate.

Both groups share `weight_decay`, `momentum`, `betas`, `eps` and `bias_correction`.

- SGD: `g = G + weight_decay * p` (L2, as torch.optim.SGD), optional heavy-ball momentum
  (no dampening, no Nesterov), `p -= lr * g`; identical to torch.optim.SGD on raw gradients.
- AdamW: torch.optim.AdamW's update (decoupled weight decay `p *= 1 - lr * weight_decay`,
  bias-corrected moments, eps added after the bias-corrected square root). With
  `bias_correction=False` (the Riemannian reference's quirk) the update is
  `p -= lr * m / (sqrt(v) + eps)`.

Two other rules for the experts (`rule`; docs/methods.md, "LoRA+ and LoRA-RITE"):

- `loraplus` (LoRA+): AdamW, with every `lora_B` in a third group, `lora_B`, whose lr is
  `loraplus_ratio` x the experts' (A and the mixer keep lr); the schedule scales both alike, so
  it is torch.optim.AdamW with two groups for the experts.
- `lorarite` (LoRA-RITE): each expert's (A_i, B_i) pair by `lorarite.lorarite_step`, with
  `betas`, `eps`, `weight_decay` (decoupled), `bias_correction`, `escaped_mass` and
  `unmagnified_clip`; adapters with a mixer (MoSLoRA) are refused. The router keeps its group.

`precondition_b_with_updated_a=True` reproduces the reference's other quirk: A is updated first
and B's preconditioner is computed from the updated A (the mixer is updated together with B).
By default both preconditioners come from the pre-step A and B.

`foreach=True` applies each update as a few multi-tensor `torch._foreach_*` calls per device and
dtype (one kernel launch per operation for all tensors on a GPU, instead of several per
parameter: a MoE-LoRA model has hundreds of adapter tensors and a GPU step is launch-bound);
`foreach=False` is the one-tensor-at-a-time loop it must equal (tests/optim). `None` (the
default) takes the multi-tensor path on GPUs and the loop on CPU, where the multi-tensor
kernels run operation by operation over all tensors and lose the cache: 1.5x slower for AdamW
on the mid benchmark model (7.7 vs 11.4 ms, AMD EPYC, one thread).

Pairing comes from the `AdapterLinear` modules the optimizer is built with (kept in `layers`,
outside `param_groups`), never from parameter order. Only parameters with `requires_grad` and a
gradient are updated. `state_dict()` holds the per-parameter moments, momentum buffers and
AdamW step counts plus each group's hyperparameters and `step` counter, so an optimizer built
the same way on a fresh model resumes exactly after `load_state_dict()`.
"""

import math
from collections.abc import Callable, Sequence

import torch

from loralab.adapters import AdapterLinear
from loralab.optim.config import BASES, RULES
from loralab.optim.lorarite import check_ranks, lorarite_step
from loralab.optim.preconditioner import precondition


class AdapterOptimizer(torch.optim.Optimizer):
    def __init__(
        self,
        layers: Sequence[tuple[str, AdapterLinear]],
        *,
        lr: float,
        base: str = "sgd",
        riemannian: bool = False,
        delta: float = 1e-6,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,  # the reference's, as OptimizerConfig
        bias_correction: bool = True,
        precondition_b_with_updated_a: bool = False,
        router_lr: float | None = None,
        router_base: str | None = None,
        router_clip: float | None = 1.0,
        foreach: bool | None = None,
        preconditioner: Callable | None = None,
        rule: str | None = None,
        loraplus_ratio: float = 16.0,
        escaped_mass: bool = True,
        unmagnified_clip: float | None = None,
    ):
        for key, value in (("base", base), ("router_base", router_base or base)):
            if value not in BASES:
                raise ValueError(f"{key}={value!r} is invalid: must be one of {', '.join(BASES)}")
        if rule is not None and (rule not in RULES or base != "adamw" or riemannian):
            raise ValueError(
                f"rule={rule!r} is invalid: must be None or one of {', '.join(RULES)}, with "
                "base='adamw' and riemannian=False"
            )
        self.layers = list(layers)
        if rule == "lorarite":
            mixed = [name for name, layer in self.layers if layer.mixer is not None]
            if mixed:
                raise ValueError(
                    f"optimizer=lorarite (LoRA-RITE) does not apply to adapters with a mixer "
                    f"(adapter.kind=moslora, or moe_lora with adapter.mixer=true; e.g. layer "
                    f"{mixed[0]}): its update is defined for a two-factor product B A, and the "
                    "mixer between them has no rule in it; train MoSLoRA with loraplus, adamw "
                    'or radamw (docs/methods.md, "LoRA+ and LoRA-RITE")'
                )
            check_ranks(self.layers)
        self.foreach = foreach
        # the Riemannian preconditioner, or a registered variant's own (same contract)
        self.preconditioner = preconditioner or precondition
        own_b_group = rule == "loraplus"  # LoRA+: B at its own lr
        experts = [
            p
            for _, layer in self.layers
            for p in (layer.lora_A, None if own_b_group else layer.lora_B, layer.mixer)
            if p is not None and p.requires_grad
        ]
        b_factors = [
            layer.lora_B for _, layer in self.layers if own_b_group and layer.lora_B.requires_grad
        ]
        routers = [
            layer.router.weight
            for _, layer in self.layers
            if layer.router is not None and layer.router.weight.requires_grad
        ]
        groups = []
        expert_settings = {
            "base": base,
            "riemannian": riemannian,
            "delta": delta,
            "precondition_b_with_updated_a": precondition_b_with_updated_a,
            "rule": rule,
            "escaped_mass": escaped_mass,
            "unmagnified_clip": unmagnified_clip,
        }
        if experts:
            groups.append({"params": experts, "name": "experts", "lr": lr, **expert_settings})
        if b_factors:
            lr_b = lr * loraplus_ratio
            groups.append({"params": b_factors, "name": "lora_B", "lr": lr_b, **expert_settings})
        if routers:
            groups.append(
                {
                    "params": routers,
                    "name": "router",
                    "base": router_base or base,
                    "lr": lr if router_lr is None else router_lr,
                    "clip": router_clip,
                }
            )
        if not groups:
            raise ValueError("no trainable adapter parameters: inject adapters before building")
        defaults = {
            "weight_decay": weight_decay,
            "momentum": momentum,
            "betas": tuple(betas),
            "eps": eps,
            "bias_correction": bias_correction,
            "riemannian": False,
            "rule": None,
            "step": 0,
        }
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not any(_has_grad(p) for group in self.param_groups for p in group["params"]):
            return loss  # a skipped batch (no gradients anywhere): no update, no step counted
        for group in self.param_groups:
            group["step"] += 1
            if group["rule"] == "lorarite":
                self._lorarite_step(group)
                continue
            if group["riemannian"]:
                self._riemannian_step(group)
                continue
            params = [p for p in group["params"] if _has_grad(p)]
            if group.get("clip"):
                torch.nn.utils.clip_grad_norm_(params, group["clip"])
            self._update(group, [(p, p.grad) for p in params])
        return loss

    def _riemannian_step(self, group: dict) -> None:
        mixers = [(m.mixer, m.mixer.grad) for _, m in self.layers if _has_grad(m.mixer)]
        a_pairs = self._preconditioned(group, "A")
        if group["precondition_b_with_updated_a"]:
            self._update(group, a_pairs)  # A moves first, B's preconditioner sees the new A
            self._update(group, self._preconditioned(group, "B") + mixers)
        else:
            self._update(group, a_pairs + self._preconditioned(group, "B") + mixers)

    def _lorarite_step(self, group: dict) -> None:
        lorarite_step(
            self.layers,
            self.state,
            lr=group["lr"],
            betas=group["betas"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            bias_correction=group["bias_correction"],
            escaped_mass=group["escaped_mass"],
            unmagnified_clip=group["unmagnified_clip"],
            step=group["step"],
        )

    def _preconditioned(self, group: dict, factor: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, preconditioned gradient) for lora_A or lora_B of every layer with a grad."""
        attribute = f"lora_{factor}"
        layers = [(n, m) for n, m in self.layers if _has_grad(getattr(m, attribute))]
        grads = self.preconditioner(layers, factor, group["delta"], group["step"])
        return [(getattr(m, attribute), g) for (_, m), g in zip(layers, grads, strict=True)]

    def _update(self, group: dict, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        if group["base"] == "sgd":
            self._sgd(group, pairs)
        else:
            self._adamw(group, pairs)

    def _use_foreach(self, device: torch.device) -> bool:
        return device.type != "cpu" if self.foreach is None else self.foreach

    def _multi_tensor_batches(self, pairs) -> tuple[list[tuple[list, list]], list]:
        """(params, grads) batches for the multi-tensor path, and the pairs left to the loop."""
        batches, looped = [], []
        for params, grads in _by_device_and_dtype(pairs):
            if self._use_foreach(params[0].device):
                batches.append((params, grads))
            else:
                looped += zip(params, grads, strict=True)
        return batches, looped

    def _sgd(self, group, pairs) -> None:
        batches, pairs = self._multi_tensor_batches(pairs)
        for params, grads in batches:
            self._sgd_foreach(group, params, grads)
        lr, weight_decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        for param, grad in pairs:
            if weight_decay:
                grad = grad.add(param, alpha=weight_decay)
            if momentum:
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(grad)
                grad = state["momentum_buffer"]
            param.add_(grad, alpha=-lr)

    def _sgd_foreach(self, group, params, grads) -> None:
        lr, weight_decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum:
            old = [i for i, p in enumerate(params) if "momentum_buffer" in self.state[p]]
            buffers = [self.state[params[i]]["momentum_buffer"] for i in old]
            if buffers:
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, [grads[i] for i in old])
            started = set(old)
            for i, param in enumerate(params):
                if i not in started:
                    self.state[param]["momentum_buffer"] = grads[i].clone()
            grads = [self.state[p]["momentum_buffer"] for p in params]
        torch._foreach_add_(params, grads, alpha=-lr)

    def _adamw(self, group, pairs) -> None:
        for param, _ in pairs:
            state = self.state[param]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(param)
                state["exp_avg_sq"] = torch.zeros_like(param)
            state["step"] += 1
        batches, pairs = self._multi_tensor_batches(pairs)
        for params, grads in batches:
            self._adamw_foreach(group, params, grads)
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        for param, grad in pairs:
            state = self.state[param]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            if group["weight_decay"]:
                param.mul_(1 - lr * group["weight_decay"])
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if group["bias_correction"]:
                step_size = lr / (1 - beta1 ** state["step"])
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** state["step"])).add_(eps)
            else:
                step_size = lr
                denom = exp_avg_sq.sqrt().add_(eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)

    def _adamw_foreach(self, group, params, grads) -> None:
        """The loop of `_adamw` as multi-tensor calls: the same operations in the same order."""
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        states = [self.state[p] for p in params]
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        if group["weight_decay"]:
            torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        if group["bias_correction"]:
            steps = [s["step"] for s in states]
            torch._foreach_div_(denoms, [math.sqrt(1 - beta2**k) for k in steps])
            torch._foreach_add_(denoms, eps)
            sizes = [-lr / (1 - beta1**k) for k in steps]
            torch._foreach_addcdiv_(params, exp_avgs, denoms, sizes)
        else:
            torch._foreach_add_(denoms, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-lr)


def _by_device_and_dtype(pairs) -> list[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """(params, grads) lists per (device, dtype): a multi-tensor call takes one of each."""
    groups: dict[tuple, tuple[list, list]] = {}
    for param, grad in pairs:
        params, grads = groups.setdefault((param.device, param.dtype), ([], []))
        params.append(param)
        grads.append(grad.to(param.dtype))
    return list(groups.values())


def _has_grad(param: torch.Tensor | None) -> bool:
    return param is not None and param.requires_grad and param.grad is not None
