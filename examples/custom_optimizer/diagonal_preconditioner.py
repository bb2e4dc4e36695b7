"""A user's own optimizer variant, registered with loralab from outside its code: RSGD with a
diagonal preconditioner (only the diagonal of each r x r Gram matrix is inverted).

Used as `plugins=[diagonal_preconditioner]` (this folder on the Python path) with
`--config-dir` pointing at ./conf, which holds optimizer/drsgd.yaml. See docs/extending.md.
"""

import torch

from loralab.optim import register_variant


def diagonal_precondition(layers, factor, delta, step):
    """grad_A / diag(B^T B + delta I) per expert row, grad_B / diag(A A^T + delta I) per column:
    the Riemannian preconditioner with the Gram matrices' off-diagonal terms dropped. Same
    signature and contract as `loralab.optim.precondition`."""
    out = []
    for _, layer in layers:
        a, b = layer.lora_A.detach().float(), layer.lora_B.detach().float()
        if factor == "A":  # lora_A (E, r, d_in): rows scaled by diag(B_i^T B_i)
            diagonal = (b * b).sum(dim=1) + delta  # (E, r)
            grad = layer.lora_A.grad.float() / diagonal.unsqueeze(-1)
            out.append(grad.to(layer.lora_A.dtype))
        else:  # lora_B (E, d_out, r): columns scaled by diag(A_i A_i^T)
            diagonal = (a * a).sum(dim=2) + delta  # (E, r)
            grad = layer.lora_B.grad.float() / diagonal.unsqueeze(1)
            out.append(grad.to(layer.lora_B.dtype))
    if not all(torch.isfinite(g).all() for g in out):
        raise FloatingPointError(f"diagonal preconditioner: non-finite gradient at step {step}")
    return out


# SGD base, preconditioned (with the function above instead of the Gram inverses), no gate rescaling
register_variant(
    "drsgd", base="sgd", riemannian=True, gate_rescale=False, preconditioner=diagonal_precondition
)
