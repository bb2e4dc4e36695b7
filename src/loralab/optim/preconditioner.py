"""The Riemannian preconditioner (docs/methods.md, "Riemannian preconditioner"): r x r solves,
batched, checked.

For each expert i of an adapter layer, with raw gradients G_A (r x d_in) and G_B (d_out x r):

    G_A' = (B_i^T B_i + delta I)^-1 G_A          G_B' = G_B (A_i A_i^T + delta I)^-1

MoSLoRA (y = s B M A x) preconditions each factor against the product of the other two:
A against B M and B against M A, i.e. the Gram matrices are M^T B^T B M and M A A^T M^T. The
mixer M itself is not preconditioned (no reference defines it; it is r x r, so its raw gradient
is already well scaled). Routers are never preconditioned.

The Gram matrices and solves run in float32 (float64 for float64 parameters) and the result is
cast back to the parameter dtype. The r x r Gram matrices of all layers of one rank, device and
work dtype are concatenated into ONE batched `torch.linalg.solve_ex` against the identity, i.e.
their inverses (what the reference computes too). On a GPU the Gram matrices and gradients of
all layers of one shape are also stacked and multiplied in ONE batched matmul each (a handful of
kernels per step instead of a few per layer, which is what a launch-bound GPU step pays for);
on CPU each layer keeps its own matmuls, since the stacking copies cost more there than the
calls they save. Solving against the stacked gradients directly copied every gradient twice
more (in and out of LAPACK's column-major layout) and was about 3x slower on CPU. A non-finite
result (checked through one sum per stack and one device sync per call; the per-expert check
runs only when a sum is not finite) is an error naming the layers, experts and step, never a
silent fallback to the raw gradient.
"""

from collections import defaultdict
from collections.abc import Sequence

import torch

from loralab.adapters import AdapterLinear


@torch.no_grad()
def precondition(
    layers: Sequence[tuple[str, AdapterLinear]], factor: str, delta: float, step: int
) -> list[torch.Tensor]:
    """Preconditioned gradients of `lora_A` (factor "A") or `lora_B` (factor "B") of `layers`.

    Every layer's parameter must have a gradient. Returns one tensor per layer, in order, shaped
    and typed like the parameter; the gradients themselves are left untouched. `step` only
    labels the error raised when a result is not finite.
    """
    if factor not in ("A", "B"):
        raise ValueError(f"factor must be 'A' or 'B', got {factor!r}")
    modules = [layer for _, layer in layers]
    grams = _grams(modules, factor)
    batches = defaultdict(list)  # one solve per batch: same rank, device and work dtype
    for index, gram in enumerate(grams):
        batches[(gram.shape[-1], gram.device, gram.dtype)].append(index)

    results: list[torch.Tensor | None] = [None] * len(layers)
    solved_ok: list[torch.Tensor | None] = [None] * len(layers)  # per expert: info == 0
    checks = []
    for (rank, device, dtype), indices in batches.items():
        stacked = torch.cat([grams[index] for index in indices])
        eye = torch.eye(rank, device=device, dtype=dtype)
        inverses, info = torch.linalg.solve_ex(stacked + delta * eye, eye.expand_as(stacked))
        checks.append((info == 0).all())
        sizes = [grams[index].shape[0] for index in indices]
        inverses, oks = inverses.split(sizes), (info == 0).split(sizes)
        by_shape = defaultdict(list)  # layers whose gradients stack: one matmul for them all
        for position, index in enumerate(indices):
            by_shape[(_param(modules[index], factor).shape, _alone(device, index))].append(position)
        for positions in by_shape.values():
            params = [_param(modules[indices[p]], factor) for p in positions]
            grad = _stack([param.grad.to(dtype) for param in params])
            inverse = _stack([inverses[p] for p in positions])
            # G_B M^-1 as (M^-T G_B^T)^T: the bmm layout that is fast for r x r (~5x on CPU)
            result = inverse @ grad if factor == "A" else (inverse.mT @ grad.mT).mT.contiguous()
            checks.append(torch.isfinite(result.sum()))
            for p, param, one in zip(positions, params, result.unbind(), strict=True):
                results[indices[p]] = one.to(param.dtype)
                solved_ok[indices[p]] = oks[p]

    if not bool(torch.stack(checks).all()):  # one device sync per call
        bad = []
        for (name, _), result, ok in zip(layers, results, solved_ok, strict=True):
            expert_ok = torch.isfinite(result).flatten(1).all(1) & ok
            if not bool(expert_ok.all()):
                bad.append(f"{name} (experts {(~expert_ok).nonzero().flatten().tolist()})")
        if bad:  # else: finite values whose sum overflowed; nothing is wrong
            other = "B^T B" if factor == "A" else "A A^T"
            raise FloatingPointError(
                f"non-finite Riemannian-preconditioned gradient of lora_{factor} at optimizer "
                f"step {step} in layer(s): {'; '.join(bad)}. The raw gradient or the adapter "
                f"weights are not finite, or {other} + delta*I is singular (delta={delta}); "
                "lower the learning rate or raise optimizer.delta."
            )
    return results


def _grams(modules: Sequence[AdapterLinear], factor: str) -> list[torch.Tensor]:
    """Per layer, the (E, r, r) Gram matrices of the factor beside `factor`: for A, B^T B (with
    a mixer (B M)^T (B M)); for B, A A^T (with a mixer (M A)(M A)^T). Layers whose other factor
    (and mixer) have the same shape are stacked and multiplied together."""
    groups = defaultdict(list)
    for index, layer in enumerate(modules):
        other = layer.lora_B if factor == "A" else layer.lora_A
        mixer = None if layer.mixer is None else layer.mixer.shape
        key = (other.shape, other.device, _work_dtype(other), mixer, _alone(other.device, index))
        groups[key].append(index)
    grams: list[torch.Tensor | None] = [None] * len(modules)
    for (_, _, dtype, has_mixer, _), indices in groups.items():
        if factor == "A":  # B^T B from B^T laid out contiguously: the fast GEMM layout on CPU
            bt = _stack([modules[i].lora_B.detach().to(dtype) for i in indices]).mT.contiguous()
            gram = bt @ bt.mT
        else:
            a = _stack([modules[i].lora_A.detach().to(dtype) for i in indices])
            gram = a @ a.mT
        if has_mixer is not None:
            mixer = _stack([modules[i].mixer.detach().to(dtype) for i in indices])
            gram = mixer.mT @ gram @ mixer if factor == "A" else mixer @ gram @ mixer.mT
        for index, one in zip(indices, gram.unbind(), strict=True):
            grams[index] = one
    return grams


def _alone(device: torch.device, index: int) -> int | None:
    """A grouping key part that keeps each layer in its own group on CPU: there the stacking
    copies cost more than the calls they save (2x slower preconditioning measured on the mid
    benchmark model, one thread), while on a GPU the saved launches are what counts."""
    return index if device.type == "cpu" else None


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """torch.stack, without the copy for a single tensor."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _param(layer: AdapterLinear, factor: str) -> torch.nn.Parameter:
    return layer.lora_A if factor == "A" else layer.lora_B


def _work_dtype(param: torch.Tensor) -> torch.dtype:
    return torch.promote_types(param.dtype, torch.float32)
