"""The Riemannian preconditioner of SPEC §3: r x r solves, batched, checked.

For each expert i of an adapter layer, with raw gradients G_A (r x d_in) and G_B (d_out x r):

    G_A' = (B_i^T B_i + delta I)^-1 G_A          G_B' = G_B (A_i A_i^T + delta I)^-1

MoSLoRA (y = s B M A x) preconditions each factor against the product of the other two:
A against B M and B against M A, i.e. the Gram matrices are M^T B^T B M and M A A^T M^T. The
mixer M itself is not preconditioned (no reference defines it; it is r x r, so its raw gradient
is already well scaled). Routers are never preconditioned.

The Gram matrices and solves run in float32 (float64 for float64 parameters) and the result is
cast back to the parameter dtype. The r x r Gram matrices of all layers whose gradients have the
same shape (apart from the expert count), device and dtype are concatenated into ONE batched
`torch.linalg.solve_ex` against the identity, i.e. their inverses (what the reference computes
too); each layer's gradient is then multiplied by its experts' inverses in one batched matmul.
Only the small r x r matrices are concatenated, never the gradients: solving against the
concatenated gradients copied every gradient twice (in and out of LAPACK's column-major layout)
and was about 3x slower on CPU. A non-finite result (checked through one sum per layer and one
device sync per step; the per-expert check runs only when that sum is not finite) is an error
naming the layers, experts and step, never a silent fallback to the raw gradient.
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
    solved_ok: list[torch.Tensor | None] = [None] * len(layers)  # per expert: info == 0
    checks = []
    for (_, device, dtype), indices in batches.items():
        gram = _gram_of_b if factor == "A" else _gram_of_a
        grams = torch.cat([gram(layers[index][1]) for index in indices])
        eye = torch.eye(grams.shape[-1], device=device, dtype=dtype)
        inverses, info = torch.linalg.solve_ex(grams + delta * eye, eye.expand_as(grams))
        sizes = [_param(layers[index][1], factor).shape[0] for index in indices]
        sums = []
        for index, inverse, ok in zip(
            indices, inverses.split(sizes), (info == 0).split(sizes), strict=True
        ):
            param = _param(layers[index][1], factor)
            grad = param.grad.to(dtype)
            # G_B M^-1 as (M^-T G_B^T)^T: the bmm layout that is fast for r x r (~5x on CPU)
            result = inverse @ grad if factor == "A" else (inverse.mT @ grad.mT).mT.contiguous()
            sums.append(result.sum())
            results[index] = result.to(param.dtype)
            solved_ok[index] = ok
        checks.append(torch.isfinite(torch.stack(sums)).all() & (info == 0).all())

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


def _gram_of_b(layer: AdapterLinear) -> torch.Tensor:
    """(E, r, r) Gram matrices of the factor left of A: B^T B, or (B M)^T (B M) with a mixer."""
    bt = layer.lora_B.detach().to(_work_dtype(layer.lora_B)).mT.contiguous()  # (E, r, d_out)
    gram = bt @ bt.mT
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
