"""LoRA-RITE (Yen et al., ICLR 2025; docs/methods.md, "LoRA+ and LoRA-RITE"): the update of every
expert's (A_i, B_i) pair, batched over a layer's experts.

Each factor is written with the rank dimension last, F_A = A_i^T (d_in x r) and F_B = B_i
(d_out x r), so that the adapter's product is B_i A_i = F_B F_A^T. For each factor X of a pair,
with Y the other factor and G the gradient of X (in X's layout):

    Y = U R                                   reduced QR: U (rows x r) orthonormal, R r x r
    g = G R^-1                                the unmagnified gradient (R^-1: pseudo-inverse)
    P = U^T U_prev                            U_prev: Y's basis at X's previous step
    V = b2 P V P^T + (1 - b2) g^T g / n       n = rows of X; V is r x r
    rho = b2 (rho + d(V_old, P V_old P^T))    escaped mass, d = max_i (lambda_i - lambda_i')
    S = g (V + rho I)^-1/2                    eigenvalues: 1 / (sqrt(lambda) + eps)
    M = b1 M P^T + (1 - b1) S
    X = X (1 - lr weight_decay) - lr M R^-T

b1 and b2 are the betas with bias correction folded in (b_k = beta (1 - beta^(k-1)) /
(1 - beta^k) at X's k-th step; the plain betas with bias_correction=False). Both factors of a
pair are updated from the pre-step A and B. Every r x r decomposition runs in float32 (float64
for float64 parameters), batched over the layer's experts; the state stays in that dtype.
A non-finite update is an error naming the layers and the step, never a silent skip.
"""

from collections.abc import Sequence

import torch

from loralab.adapters import AdapterLinear


@torch.no_grad()
def lorarite_step(
    layers: Sequence[tuple[str, AdapterLinear]],
    state: dict,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    escaped_mass: bool,
    unmagnified_clip: float | None,
    step: int,
) -> None:
    """One LoRA-RITE step of every lora_A and lora_B of `layers` that has a gradient; `state`
    is the optimizer's per-parameter state (entries created here). `step` labels errors.

    Computed transposed, X^T = R^-1 M^T etc.: every product is then (r x r) @ (r x rows) or
    (r x rows) @ (rows x r), the layouts that are fast on CPU (lora_A is stored as F_A^T
    already; (rows x r) @ (r x r) products were most of the step's time)."""
    factors = []  # (layer name, factor, param, g^T, U^T of Y, R^-1)
    for name, layer in layers:
        decomposed = {}
        for factor, other in (("A", "B"), ("B", "A")):
            param = getattr(layer, f"lora_{factor}")
            if not (param.requires_grad and param.grad is not None):
                continue
            if other not in decomposed:
                decomposed[other] = _basis_and_inverse(layer, other)
            basis_t, r_inv = decomposed[other]
            grad_t = param.grad.to(r_inv.dtype)
            grad_t = grad_t if factor == "A" else grad_t.mT
            factors.append((name, factor, param, r_inv.mT @ grad_t, basis_t, r_inv))
    if not factors:
        return
    if unmagnified_clip:
        norm = torch.linalg.vector_norm(torch.stack([f[3].norm() for f in factors]))
        if norm > unmagnified_clip:  # one total norm for every pair, as a gradient clip
            factors = [(*f[:3], f[3] * (unmagnified_clip / norm), *f[4:]) for f in factors]

    updates, checks = [], []
    for _, factor, param, grad_t, basis_t, r_inv in factors:
        entry = state[param]
        entry["step"] = entry.get("step", 0) + 1
        beta1, beta2 = (_decay(beta, entry["step"], bias_correction) for beta in betas)
        fresh = grad_t @ grad_t.mT / grad_t.shape[-1]
        if "basis" in entry:
            projection = basis_t @ entry["basis"].mT
            old = entry["exp_avg_sq"]
            moved = _symmetric(projection @ old @ projection.mT)
            mass = entry["escaped_mass"]
            if escaped_mass:
                lost = torch.linalg.eigvalsh(old) - torch.linalg.eigvalsh(moved)
                mass = mass + lost.amax(-1).clamp_min(0)
            mass = beta2 * mass
            second = _symmetric(beta2 * moved + (1 - beta2) * fresh)
            first_t = beta1 * (projection @ entry["exp_avg"])
        else:
            mass = grad_t.new_zeros(grad_t.shape[:-2])
            second = _symmetric((1 - beta2) * fresh)
            first_t = torch.zeros_like(grad_t)
        eye = torch.eye(second.shape[-1], dtype=second.dtype, device=second.device)
        values, vectors = torch.linalg.eigh(second + mass[..., None, None] * eye)
        root = 1 / (values.clamp_min(0).sqrt() + eps)
        first_t = first_t + (1 - beta1) * (vectors * root[..., None, :] @ vectors.mT @ grad_t)
        entry.update(exp_avg=first_t, exp_avg_sq=second, escaped_mass=mass, basis=basis_t)
        update = r_inv @ first_t  # X^T's update, (r x rows)
        updates.append(update if factor == "A" else update.mT)
        checks.append(torch.isfinite(update.sum()))

    if not bool(torch.stack(checks).all()):  # one device sync per step
        bad = sorted(
            {
                f"{name} (lora_{factor})"
                for (name, factor, *_), u in zip(factors, updates, strict=True)
                if not bool(torch.isfinite(u).all())
            }
        )
        if bad:  # else finite values whose sum overflowed
            raise FloatingPointError(
                f"non-finite LoRA-RITE update at optimizer step {step} in: {'; '.join(bad)}. "
                "The gradient or the adapter weights are not finite; lower the learning rate."
            )
    for (_, _, param, *_), update in zip(factors, updates, strict=True):
        if weight_decay:
            param.mul_(1 - lr * weight_decay)
        param.add_(update.to(param.dtype), alpha=-lr)


def check_ranks(layers: Sequence[tuple[str, AdapterLinear]]) -> None:
    """LoRA-RITE's reduced QR needs each factor to have at least r rows: r <= d_in, d_out."""
    for name, layer in layers:
        rank, (d_out, d_in) = (
            layer.lora_B.shape[-1],
            (layer.lora_B.shape[-2], layer.lora_A.shape[-1]),
        )
        if rank > min(d_in, d_out):
            raise ValueError(
                f"LoRA-RITE needs rank <= min(d_in, d_out); layer {name} has rank {rank} on a "
                f"{d_out} x {d_in} weight"
            )


def _basis_and_inverse(layer: AdapterLinear, factor: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(U^T, R^-1) of the reduced QR F = U R of F_A = A^T or F_B = B, (E, r, rows) and (E, r,
    r), in float32 (float64 for float64 parameters). R^-1 is the pseudo-inverse, since R is
    singular where the factor is (B = 0 at initialisation: its partner's unmagnified gradient
    is then zero)."""
    param = getattr(layer, f"lora_{factor}").detach()
    param = param.to(torch.promote_types(param.dtype, torch.float32))
    basis, upper = torch.linalg.qr(param.mT if factor == "A" else param)
    return basis.mT, torch.linalg.pinv(upper)


def _decay(beta: float, step: int, bias_correction: bool) -> float:
    if not bias_correction:
        return beta
    return beta * (1 - beta ** (step - 1)) / (1 - beta**step)


def _symmetric(matrix: torch.Tensor) -> torch.Tensor:
    return (matrix + matrix.mT) / 2
