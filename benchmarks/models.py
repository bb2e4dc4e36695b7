"""The base models the benchmarks train adapters on, and their batch sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ModelSpec:
    """A base model (built frozen, in train mode) and the batch of random tokens it trains on."""

    name: str
    description: str
    batch: int
    seq_len: int
    build: Callable[[torch.device, torch.dtype], nn.Module]
    vocab_size: int

    def tokens(self, seed: int, device) -> torch.Tensor:
        """The (batch, seq_len) random token ids a step trains on, fixed by `seed`."""
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, self.vocab_size, (self.batch, self.seq_len), generator=generator)
        return ids.to(device)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "batch": self.batch,
            "seq_len": self.seq_len,
            "vocab_size": self.vocab_size,
        }


def random_llama(
    name: str,
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    mlp: int,
    vocab: int,
    batch: int,
    seq_len: int,
    seed: int = 0,
) -> ModelSpec:
    """A random-init Llama (weights from `seed`, untied embeddings)."""
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max(seq_len, 64),
        tie_word_embeddings=False,
    )

    def build(device: torch.device, dtype: torch.dtype) -> nn.Module:
        torch.manual_seed(seed)
        with torch.device(device):  # a GPU-size model is initialised on the GPU, not the CPU
            model = LlamaForCausalLM(config)
        return _frozen(model, device, dtype)

    description = (
        f"random-init Llama: hidden {hidden}, {layers} layers, {heads} heads, {kv_heads} KV "
        f"heads, MLP {mlp}, vocab {vocab}"
    )
    return ModelSpec(name, description, batch, seq_len, build, vocab)


def smollm2(*, batch: int, seq_len: int) -> ModelSpec:
    """The embedded default model (converted once into ~/.cache/loralab; no network)."""

    def build(device: torch.device, dtype: torch.dtype) -> nn.Module:
        from loralab.models import load_model

        dtype_name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
        config = {
            "source": "auto",
            "pretrained": SMOLLM2,
            "dtype": dtype_name,
            "trust_remote_code": False,
        }
        model, _ = load_model(config)
        return _frozen(model, device, dtype)

    description = "SmolLM2-135M-Instruct (embedded default): hidden 576, 30 layers, vocab 49152"
    return ModelSpec("smollm2_135m", description, batch, seq_len, build, 49152)


def _frozen(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    return model.to(device=device, dtype=dtype).requires_grad_(False).train()


def model_specs(quick: bool) -> dict[str, ModelSpec]:
    """Every benchmarked model at the full size (the issue's) or at the --quick smoke size."""
    if quick:
        return {
            "mid_llama": random_llama(
                "mid_llama",
                hidden=256,
                layers=2,
                heads=4,
                kv_heads=1,
                mlp=704,
                vocab=2048,
                batch=2,
                seq_len=64,
            ),
            "smollm2_135m": smollm2(batch=1, seq_len=16),
            "tiny": tiny_llama(),
        }
    return {
        "mid_llama": random_llama(
            "mid_llama",
            hidden=1024,
            layers=8,
            heads=16,
            kv_heads=4,
            mlp=2816,
            vocab=8192,
            batch=4,
            seq_len=256,
        ),
        # 1 x 256 tokens, not 4 x 256: at 4 x 256 one SmolLM2 step takes about 8 s on one
        # core, and 8 variants x (2 + 3 rounds) of it would not fit the 10-minute budget.
        "smollm2_135m": smollm2(batch=1, seq_len=256),
        "tiny": tiny_llama(),
        # GPU scale (not in the default --models): Llama-3.2-1B's layer shapes, 8 x 512 tokens.
        "llama_1b": random_llama(
            "llama_1b",
            hidden=2048,
            layers=16,
            heads=32,
            kv_heads=8,
            mlp=8192,
            vocab=32000,
            batch=8,
            seq_len=512,
        ),
    }


def sweep_spec(quick: bool) -> ModelSpec:
    """The scaling sweep's model: the mid-size Llama's layer shapes, 2 layers, one sequence."""
    if quick:
        return tiny_llama(name="sweep_llama")
    return random_llama(
        "sweep_llama",
        hidden=1024,
        layers=2,
        heads=16,
        kv_heads=4,
        mlp=2816,
        vocab=8192,
        batch=1,
        seq_len=256,
    )


def tiny_llama(name: str = "tiny") -> ModelSpec:
    """A few-millisecond model for tests of the harness itself (timings mean nothing)."""
    return random_llama(
        name, hidden=32, layers=1, heads=2, kv_heads=1, mlp=64, vocab=128, batch=1, seq_len=16
    )
