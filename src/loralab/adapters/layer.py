"""`AdapterLinear`: a frozen nn.Linear plus a LoRA / MoSLoRA / MoE-LoRA adapter
(docs/methods.md, "The adapter family" and "Gate-based rescaling").

All three kinds are one layer with E stacked experts (E = 1 for LoRA and MoSLoRA):

    y = W0 x + s * sum_i g_i(x) * B_i M_i A_i drop(x)

computed as a single rank-E*r LoRA whose r-blocks are scaled by the gate: two matrix products
per layer, never a Python loop over experts. The adapter runs in the input dtype; its parameters
are stored in float32 (float64 if the base is float64) so a bf16 base still trains them exactly.

Dropout: ONE mask on x is shared by all experts. The reference draws a mask per expert; a shared
mask is what makes the stacked product exact and fast, and it is the same thing at dropout 0 and
for E = 1. The router sees the un-dropped x. `AdapterDropout` is nn.Dropout with a faster CPU
mask (see there).

Speed (benchmarks/train_step.py measures it): the experts' B factors are laid out as one
contiguous (E*r, d_out) matrix, so the forward product, the input gradient `dy @ B_cat^T` and
the weight gradient `h^T @ dy` all run in the GEMM layouts that are fast for a skinny rank
dimension (on CPU the other layouts were 3-10x slower at r = 4); the gate multiplies the
(N, E, r) view of the rank activations by broadcasting (no repeat_interleave); the adapter
output is accumulated onto the base output by one `addmm` (scale folded in); with a router, one
fused autograd function (`gated_product`) keeps only m, g and lora_B for the backward.

Parameter contract (the optimizers rely on it): `lora_A` (E, r, d_in), `lora_B` (E, d_out, r),
`mixer` (E, r, r) or None, `router` nn.Linear(d_in, E, bias=False) or None (E > 1 only).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from loralab.adapters.config import AdapterConfig
from loralab.adapters.gated_product import gated_product
from loralab.adapters.router import expert_load, top_k_gate


class AdapterLinear(nn.Module):
    """Wraps `base` (frozen, kept as `self.base`) and adds the adapter path to its output.

    `gate_rescale` comes from the optimizer's name (`OptimizerConfig.gate_rescale`), set when the
    adapters are built.
    With `track_router_stats`, each forward stores `router_load` (fraction of the N*k top-k
    selections that went to each expert) and `router_entropy` (mean entropy of the full softmax),
    detached. With `load_balance_coef > 0`, each forward stores the Switch-Transformer loss
    `aux_loss = E * sum_i f_i * P_i` (f: selection fractions, P: mean router probabilities).
    """

    def __init__(self, base: nn.Linear, config: AdapterConfig):
        super().__init__()
        base.requires_grad_(False)
        self.base = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.num_experts, self.rank, self.top_k = config.num_experts, config.rank, config.top_k
        self.scale = config.scale
        self.gate_rescale = config.gate_rescale
        self.load_balance_coef = config.load_balance_coef
        self.track_router_stats = False
        self.router_load = self.router_entropy = self.aux_loss = None

        experts, rank = self.num_experts, self.rank
        factory = {
            "device": base.weight.device,
            "dtype": torch.promote_types(base.weight.dtype, torch.float32),
        }
        self.drop = AdapterDropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.lora_A = nn.Parameter(torch.empty(experts, rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(experts, self.out_features, rank, **factory))
        self.mixer = (
            nn.Parameter(torch.empty(experts, rank, rank, **factory)) if config.mixer else None
        )
        self.router = (
            nn.Linear(self.in_features, experts, bias=False, **factory) if experts > 1 else None
        )
        with torch.no_grad():  # each A_i and M_i as if it were its own nn.Linear weight
            for i in range(experts):
                nn.init.kaiming_uniform_(self.lora_A[i], a=math.sqrt(5))
                if self.mixer is not None:
                    nn.init.kaiming_uniform_(self.mixer[i], a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        out = self._add_adapter(y.reshape(-1, self.out_features), x.reshape(-1, self.in_features))
        return out.view(y.shape)

    def _add_adapter(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y + adapter output, for tokens x of shape (N, d_in) and base outputs y (N, d_out)."""
        experts, rank, dtype = self.num_experts, self.rank, x.dtype
        a_cat = self.lora_A.to(dtype).view(experts * rank, self.in_features)
        m = F.linear(self.drop(x), a_cat)  # (N, E*r)
        if self.mixer is not None:
            m = torch.einsum("ner,eqr->neq", m.view(-1, experts, rank), self.mixer.to(dtype))
            m = m.reshape(-1, experts * rank)
        gate = None if self.router is None else self._gate(x)
        return gated_product(y, m, gate, self.lora_B, self.scale, self.gate_rescale)

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        """Top-k gate (N, E) from the router (router.py), recording the statistics asked for."""
        gate, logits, chosen = top_k_gate(x, self.router.weight, self.top_k)
        if self.track_router_stats or self.load_balance_coef > 0:
            probs = logits.softmax(-1)
            load = expert_load(chosen, self.num_experts, logits.dtype)
            if self.track_router_stats:
                self.router_load = load.detach()
                self.router_entropy = torch.special.entr(probs).sum(-1).mean().detach()
            if self.load_balance_coef > 0:
                self.aux_loss = self.num_experts * (load * probs.mean(0)).sum()
        return gate

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, scale={self.scale:g}, num_experts={self.num_experts}, "
            f"top_k={self.top_k}, mixer={self.mixer is not None}, gate_rescale={self.gate_rescale}"
        )


class AdapterDropout(nn.Dropout):
    """nn.Dropout on the adapter input, with a faster mask on CPU.

    Same distribution and generator as nn.Dropout: each element is kept with probability 1 - p
    (a uniform draw >= p) and scaled by 1 / (1 - p). On CPU in training, torch's dropout draws
    its mask with `bernoulli_`; drawing it with `torch.rand` made forward + backward about a
    third faster (measured on a 1024 x 1024 input, one thread). Elsewhere (CUDA: torch's fused
    kernel; eval; p = 0) this is plain nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or self.inplace or x.device.type != "cpu":
            return super().forward(x)
        work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        mask = torch.rand(x.shape, dtype=work, device=x.device).ge_(self.p)
        return x * mask.to(x.dtype).div_(1 - self.p)
