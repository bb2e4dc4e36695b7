"""loralab: config-driven experiments with LoRA-family adapters and Riemannian optimizers."""

from pathlib import Path

__version__ = "0.1.0"

# The Hydra config tree (conf/ at the repository's top level) ships inside the package, so
# every install (editable, wheel, plain `pip install .`) has it; users add their own groups
# with Hydra's --config-dir. Commands register its resolvers (loralab.cli.resolvers).
CONF_DIR = str(Path(__file__).resolve().parent / "conf")
