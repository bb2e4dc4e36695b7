"""Model loading: the embedded default (SmolLM2-135M from a bundled GGUF), Hub models, tiny test models."""

from loralab.models.loading import linear_module_names, load_model

__all__ = ["linear_module_names", "load_model"]
