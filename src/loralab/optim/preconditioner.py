"""The Riemannian preconditioner of SPEC §3: r x r solves, batched, checked.

For each expert i of an adapter layer, with raw gradients G_A (r x d_in) and G_B (d_out x r):

    G_A' = (B_i^T B_i + delta I)^-1 G_A          G_B' = G_B (A_i A_i^T + delta I)^-1

MoSLoRA (y = s B M A x) preconditions each factor against the product of the other two:
A against B M and B against M A, i.e. the Gram matrices are M^T B^T B M and M A A^T M^T. The
mixer M itself is not preconditioned (no reference defines it; it is r x r, so its raw gradient
is already well scaled). Routers are never preconditioned.

The Gram matrices and solves run in float32 (float64 for float64 parameters) and the result is
cast back to the parameter dtype. All layers whose gradients have the same shape (apart from
the expert count), device and dtype are concatenated into ONE batched `torch.linalg.solve_ex`,
so a step costs a handful of solves, not one per layer or expert. A non-finite result is an
error naming the layers and the step, never a silent fallback to the raw gradient.
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
    batches = defaultdict(list)
    for index, (_, layer) in enumerate(layers):
        param = _param(layer, factor)
        batches[(param.shape[1:], param.device, _work_dtype(param))].append(index)

    results: list[torch.Tensor | None] = [None] * len(layers)
    expert_ok: list[torch.Tensor | None] = [None] * len(layers)
    batch_ok = []
    for (_, device, dtype), indices in batches.items():
        grams, grads = [], []
        for index in indices:
            layer = layers[index][1]
            grams.append(_gram_of_b(layer) if factor == "A" else _gram_of_a(layer))
            grads.append(_param(layer, factor).grad.to(dtype))
        eye = torch.eye(grams[0].shape[-1], device=device, dtype=dtype)
        solved, info = torch.linalg.solve_ex(
            torch.cat(grams) + delta * eye, torch.cat(grads), left=factor == "A"
        )
        ok = torch.isfinite(solved).flatten(1).all(1) & (info == 0)
        batch_ok.append(ok.all())
        sizes = [grad.shape[0] for grad in grads]
        for index, chunk, chunk_ok in zip(
            indices, solved.split(sizes), ok.split(sizes), strict=True
        ):
            results[index] = chunk.to(_param(layers[index][1], factor).dtype)
            expert_ok[index] = chunk_ok

    if not all(bool(flag) for flag in batch_ok):  # one device sync per batch
        bad = [
            f"{name} (experts {(~ok).nonzero().flatten().tolist()})"
            for (name, _), ok in zip(layers, expert_ok, strict=True)
            if not bool(ok.all())
        ]
        other = "B^T B" if factor == "A" else "A A^T"
        raise FloatingPointError(
            f"non-finite Riemannian-preconditioned gradient of lora_{factor} at optimizer step "
            f"{step} in layer(s): {'; '.join(bad)}. The raw gradient or the adapter weights are "
            f"not finite, or {other} + delta*I is singular (delta={delta}); lower the learning "
            "rate or raise optimizer.delta."
        )
    return results


def _gram_of_b(layer: AdapterLinear) -> torch.Tensor:
    """(E, r, r) Gram matrices of the factor left of A: B^T B, or (B M)^T (B M) with a mixer."""
    b = layer.lora_B.detach().to(_work_dtype(layer.lora_B))
    gram = b.mT @ b
    if layer.mixer is not None:
        mixer = layer.mixer.detach().to(gram.dtype)
        gram = mixer.mT @ gram @ mixer
    return gram


def _gram_of_a(layer: AdapterLinear) -> torch.Tensor:
    """(E, r, r) Gram matrices of the factor right of B: A A^T, or (M A)(M A)^T with a mixer."""
    a = layer.lora_A.detach().to(_work_dtype(layer.lora_A))
    gram = a @ a.mT
    if layer.mixer is not None:
        mixer = layer.mixer.detach().to(gram.dtype)
        gram = mixer @ gram @ mixer.mT
    return gram


def _param(layer: AdapterLinear, factor: str) -> torch.nn.Parameter:
    return layer.lora_A if factor == "A" else layer.lora_B


def _work_dtype(param: torch.Tensor) -> torch.dtype:
    return torch.promote_types(param.dtype, torch.float32)
