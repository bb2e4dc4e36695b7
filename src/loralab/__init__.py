"""loralab: LoRA-family adapters and optimizers, config-driven."""

__version__ = "0.1.0"
