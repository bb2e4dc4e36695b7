"""Fail fast: check the whole composed config before any model or data loads, for both entry
points (`loralab-train` and `loralab-eval`).

Every problem is reported at once, each naming the key, the bad value and what is allowed;
the entry points turn a ``ConfigError`` into exit code 2.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from loralab.values import is_integer, is_number

NONFINITE_POLICIES = ("stop", "skip")
WANDB_MODES = ("auto", "offline", "online", "disabled")
SHARDING_STRATEGIES = ("fsdp", "deepspeed")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
PRECISIONS += ("32", "16", "64", "bf16", "transformer-engine", "transformer-engine-float16")


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
EVAL_DEVICES = ("auto", "cpu", "cuda")
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit; Lightning seeds NumPy with the run's seed
# what some settings need installed: (the setting's prefix, the Python package)
NEEDS_PACKAGE = {"transformer-engine": "transformer_engine", "deepspeed": "deepspeed"}


class ConfigError(ValueError):
    """One or more invalid config values (the message lists them all)."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def validate_config(cfg: Mapping[str, Any], entry: str = "train") -> None:
    """Raise ``ConfigError`` listing every invalid value of a composed config: `entry` "train"
    (loralab-train's) or "eval" (loralab-eval's). First imports the config's `plugins`, which
    may register the tasks, optimizer variants or adapter kinds the config names."""
    from loralab.cli.plugins import PluginError, import_plugins

    errors: list[str] = []
    plugins = cfg.get("plugins")
    try:
        import_plugins(_plain(plugins))
    except PluginError as err:
        errors.append(str(err))
    plain, unresolvable = _resolved(cfg)
    if unresolvable:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join([*errors, unresolvable]))
    errors += _shared_errors(cfg)
    errors += _train_errors(cfg) if entry == "train" else _eval_errors(cfg)
    errors += _typed_key_errors(plain)
    if errors:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(errors))


def _resolved(cfg) -> tuple[Any, str | None]:
    """(the config as plain containers, None), or (None, why its interpolations cannot be
    resolved, e.g. a per-family setting keyed by an optimizer name nobody registered)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return _plain(cfg), None
    except OmegaConfBaseException as err:
        message = str(err).split("\n")[0]
        return None, message.split("while resolving interpolation: ")[-1].strip("'\"")


def _checker(errors: list[str]):
    """`check(fn)`: fn's result, or None with its ValueError / KeyError / TypeError recorded."""

    def check(fn):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn()
        except (ValueError, KeyError, TypeError) as err:
            errors.append(str(err).strip("'\""))
            return None

    return check


def _shared_errors(cfg: Mapping[str, Any]) -> list[str]:
    """The model, data and task keys both entry points read."""
    from loralab.data.encoding import OVERFLOW_MODES
    from loralab.models.loading import DTYPES, SOURCES
    from loralab.tasks import task_config_errors

    errors: list[str] = []
    model = _plain(cfg["model"])
    if model["source"] not in SOURCES:
        errors.append(f"model.source={model['source']!r} must be one of {list(SOURCES)}")
    if model["dtype"] not in DTYPES:
        errors.append(f"model.dtype={model['dtype']!r} must be one of {list(DTYPES)}")
    errors += _quantization_errors(model)
    data = cfg["data"]
    if not is_integer(data["eval_batch_size"]) or data["eval_batch_size"] < 1:
        errors.append(f"data.eval_batch_size={data['eval_batch_size']!r} must be an integer >= 1")
    if not is_integer(data["max_length"]) or data["max_length"] < 16:
        errors.append(f"data.max_length={data['max_length']!r} must be an integer >= 16")
    if data["overflow"] not in OVERFLOW_MODES:
        errors.append(f"data.overflow={data['overflow']!r} must be one of {list(OVERFLOW_MODES)}")
    if model["source"] == "tiny":
        errors.extend(_tiny_model_errors(model.get("tiny") or {}))
    errors.extend(task_config_errors(_plain(cfg["task"])))
    return errors


def _quantization_errors(model: Mapping[str, Any]) -> list[str]:
    """``model.quantization=nf4`` needs bitsandbytes, a CUDA GPU and a pretrained model."""
    from loralab.models.loading import DTYPES, QUANTIZATIONS

    errors = []
    if model.get("compute_dtype", "float16") not in DTYPES:
        errors.append(
            f"model.compute_dtype={model.get('compute_dtype')!r} must be one of {list(DTYPES)}"
        )
    quantization = model.get("quantization", "none")
    if quantization not in QUANTIZATIONS:
        errors.append(f"model.quantization={quantization!r} must be one of {list(QUANTIZATIONS)}")
    if quantization != "nf4":
        return errors
    if model["source"] == "tiny":
        errors.append(
            "model.quantization=nf4 quantises a pretrained checkpoint as it loads: use a model "
            "with source hub, auto or embedded (e.g. model=smollm2_135m), or "
            "model.quantization=none"
        )
    if not _installed("bitsandbytes") or _gpu_count() == 0:
        errors.append(
            "model.quantization=nf4 needs the bitsandbytes package and a CUDA GPU (its 4-bit "
            "kernels run there; here: "
            + ("bitsandbytes installed" if _installed("bitsandbytes") else "no bitsandbytes")
            + f", {_gpu_count()} GPU(s)): on a GPU machine pip install 'loralab[nf4]', or set "
            "model.quantization=none (bf16 weights)"
        )
    return errors


def _tiny_model_errors(tiny: Mapping[str, Any]) -> list[str]:
    """The tiny Llama's attention shapes, which transformers checks only once the run folder
    exists (or not at all: odd head sizes fail in the rotary embedding)."""
    hidden, heads, kv_heads = (tiny.get(k) for k in ("hidden_size", "num_heads", "num_kv_heads"))
    if not all(is_integer(v) and v >= 1 for v in (hidden, heads, kv_heads)):
        return []  # TYPED_KEYS names a value of the wrong type
    errors = []
    if hidden % (2 * heads):
        fitting = [n for n in range(1, hidden // 2 + 1) if hidden % (2 * n) == 0]
        errors.append(
            f"model.tiny.num_heads={heads} must split model.tiny.hidden_size={hidden} into heads "
            f"of an even size: one of {fitting}"
        )
    if heads % kv_heads:
        errors.append(
            f"model.tiny.num_kv_heads={kv_heads} must divide model.tiny.num_heads={heads}"
        )
    return errors


def _eval_errors(cfg: Mapping[str, Any]) -> list[str]:
    """loralab-eval's own keys: which split, mode, precision, device and adapter."""
    import torch

    from loralab.cli.precision import EVAL_CHOICES
    from loralab.evaluation.predict import MODES
    from loralab.tasks import SPLITS

    errors: list[str] = []
    if cfg["split"] not in SPLITS:
        errors.append(f"split={cfg['split']!r} must be one of {list(SPLITS)}")
    if cfg["mode"] not in (*MODES, "harness"):
        errors.append(f"mode={cfg['mode']!r} must be one of {[*MODES, 'harness']}")
    elif cfg["mode"] == "harness":
        errors += _harness_errors(_plain(cfg.get("harness")) or {})
    if cfg["precision"] not in EVAL_CHOICES:
        errors.append(
            f"precision={cfg['precision']!r} must be one of {list(EVAL_CHOICES)} (use the "
            "precision the run trained with: its summary.json names it)"
        )
    if cfg["device"] not in EVAL_DEVICES:
        errors.append(f"device={cfg['device']!r} must be one of {list(EVAL_DEVICES)}")
    elif cfg["device"] == "cuda" and not torch.cuda.is_available():
        errors.append("device='cuda' but torch sees no CUDA device here: use device=auto or cpu")
    adapter_dir = cfg["adapter_dir"]
    if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
        errors.append(
            f"adapter_dir={adapter_dir!r} holds no adapter_config.json "
            "(expected a folder written by save_adapter, e.g. a training run's adapter/)"
        )
    return errors


def _harness_errors(harness: Mapping[str, Any]) -> list[str]:
    """mode=harness: lm-eval installed, tasks named, the optional settings in range."""
    from loralab.evaluation.harness import INSTALL_HINT, harness_installed

    errors = []
    if not harness_installed():
        errors.append(
            f"mode=harness needs lm-evaluation-harness, not installed here: {INSTALL_HINT}"
        )
    tasks = harness.get("tasks")
    if not (isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks)):
        errors.append(
            f"harness.tasks={tasks!r} must name lm-eval tasks, e.g. 'harness.tasks=[arc_easy]'"
        )
    folder = harness.get("include_path")
    if folder is not None and not Path(str(folder)).is_dir():
        errors.append(f"harness.include_path={folder!r} is not a folder (of task YAMLs)")
    limit = harness.get("limit")
    if limit is not None and not (is_number(limit) and limit > 0):
        errors.append(f"harness.limit={limit!r} must be null or a number > 0 (lm-eval's --limit)")
    shots = harness.get("num_fewshot")
    if shots is not None and not (is_integer(shots) and shots >= 0):
        errors.append(f"harness.num_fewshot={shots!r} must be null or an integer >= 0")
    return errors


def _train_errors(cfg: Mapping[str, Any]) -> list[str]:
    """loralab-train's own keys: adapter, optimizer, trainer, evaluation, logging, resume."""
    from loralab.adapters import AdapterConfig, resolve_targets
    from loralab.data.encoding import TARGET_LAYOUTS
    from loralab.models.loading import linear_module_names
    from loralab.optim import OptimizerConfig
    from loralab.tasks import SPLITS

    errors: list[str] = []
    check = _checker(errors)
    model = _plain(cfg["model"])
    adapter_values = _plain(cfg["adapter"])
    if "gate_rescale" in adapter_values:
        errors.append(
            "adapter.gate_rescale is chosen by the optimizer's name: pick a gate-rescaled "
            "variant (optimizer=gsgd, grsgd, gadamw or gradamw) instead of setting it"
        )
        adapter_values = {k: v for k, v in adapter_values.items() if k != "gate_rescale"}
    adapter = check(lambda: AdapterConfig.from_mapping(adapter_values))
    optimizer = check(lambda: OptimizerConfig.from_mapping(_plain(cfg["optimizer"])))
    names = check(lambda: linear_module_names(model))
    if adapter is not None and names is not None:
        check(lambda: resolve_targets(adapter.target_modules, names))

    data = cfg["data"]
    if not is_integer(data["batch_size"]) or data["batch_size"] < 1:
        errors.append(f"data.batch_size={data['batch_size']!r} must be an integer >= 1")
    layout = data.get("target_layout", "loralab")
    if layout not in TARGET_LAYOUTS:
        errors.append(f"data.target_layout={layout!r} must be one of {list(TARGET_LAYOUTS)}")
    max_steps = cfg["trainer"]["max_steps"]
    if not is_integer(max_steps) or max_steps < 1:
        errors.append(f"trainer.max_steps={max_steps!r} must be an integer >= 1")
    scheduler = cfg["optimizer"].get("scheduler")
    if scheduler and is_integer(max_steps) and is_integer(scheduler.get("warmup_steps")):
        length = scheduler.get("total_steps") or max_steps
        if not is_integer(length):
            length = max_steps  # a bad total_steps is reported by OptimizerConfig
        if scheduler["name"] != "constant" and scheduler["warmup_steps"] >= length:
            errors.append(
                f"optimizer.scheduler.warmup_steps={scheduler['warmup_steps']} must be below the "
                f"schedule length {length} (optimizer.scheduler.total_steps or trainer.max_steps)"
            )
    strategy = str(cfg["trainer"].get("strategy", "auto"))
    if optimizer is not None and optimizer.riemannian and strategy.startswith(SHARDING_STRATEGIES):
        errors.append(
            f"trainer.strategy={strategy} shards parameters, but optimizer={cfg['optimizer']['name']}"
            " preconditions whole (A, B) pairs; use trainer=ddp, or a non-Riemannian optimizer"
        )
    precision = cfg["trainer"].get("precision", "32-true")
    if str(precision) not in PRECISIONS:
        errors.append(
            f"trainer.precision={precision!r} must be one of {list(PRECISIONS)} (auto: bf16-mixed "
            "on a GPU, and on a CPU where a probe finds it faster than float32)"
        )
    errors.extend(_trainer_errors(_plain(cfg["trainer"])))
    caps = cfg["task"].get("max_examples") or {}
    if caps.get("train") == 0:
        errors.append("task.max_examples.train=0 leaves nothing to train on: null = all, or >= 1")
    evaluation = cfg["evaluation"]
    if evaluation.get("generate_split", "test") not in SPLITS:
        errors.append(
            f"evaluation.generate_split={evaluation['generate_split']!r} must be one of "
            f"{list(SPLITS)}"
        )
    wandb = (cfg.get("logger") or {}).get("wandb") or {}
    if wandb.get("mode", "auto") not in WANDB_MODES:
        errors.append(f"logger.wandb.mode={wandb['mode']!r} must be one of {list(WANDB_MODES)}")
    every = cfg["checkpoint"]["every_n_steps"]
    if not is_integer(every) or every < 0:
        errors.append(f"checkpoint.every_n_steps={every!r} must be an integer >= 0 (0 = end only)")
    metric = cfg.get("optimized_metric")
    if metric is not None and not (isinstance(metric, str) and "/" in metric):
        errors.append(
            f"optimized_metric={metric!r} must be a logged metric such as val/acc or val/loss "
            "(or null)"
        )
    if cfg["nonfinite"] not in NONFINITE_POLICIES:
        errors.append(f"nonfinite={cfg['nonfinite']!r} must be one of {list(NONFINITE_POLICIES)}")
    processes = _plain(cfg["trainer"]).get("devices", 1)  # -1 / "auto": all, maybe several
    single = processes == 1 or (isinstance(processes, list) and len(processes) == 1)
    nodes = cfg["trainer"].get("num_nodes", 1)
    many = not single or (is_integer(nodes) and nodes > 1)
    if cfg["nonfinite"] == "skip" and many:
        errors.append(
            f"nonfinite=skip with trainer.devices={processes!r}: one process skipping an update "
            "alone would leave the others waiting in the gradient all-reduce; use nonfinite=stop "
            "(exit 3, resume=auto continues from the last good checkpoint)"
        )
    resume = cfg["resume"]
    if resume not in (None, "auto") and not str(resume).endswith(".ckpt"):
        errors.append(f"resume={resume!r} must be null, auto or a path to a .ckpt file")
    seed = cfg["seed"]
    if not is_integer(seed) or not 0 <= seed <= MAX_SEED:
        errors.append(f"seed={seed!r} must be an integer in [0, {MAX_SEED}] (what NumPy accepts)")
    return errors


def _trainer_errors(trainer: Mapping[str, Any]) -> list[str]:
    """The Lightning Trainer keys that otherwise fail late (after outputs are written or the
    model has loaded) or deep inside Lightning with no key named."""
    errors = []
    interval = trainer.get("val_check_interval", 1.0)
    if not (
        _whole(1)(interval)
        or (isinstance(interval, float) and 0 < interval <= 1)
        or interval is None
    ):
        errors.append(
            f"trainer.val_check_interval={interval!r} must be an integer >= 1 (optimizer steps) "
            "or a fraction of an epoch in (0, 1]"
        )
    for key, least in (("accumulate_grad_batches", 1), ("num_nodes", 1), ("log_every_n_steps", 1)):
        value = trainer.get(key, least)
        if not _whole(least)(value):
            errors.append(f"trainer.{key}={value!r} must be an integer >= {least}")
    devices = trainer.get("devices", "auto")
    ok = (
        devices == "auto"
        or devices == -1
        or _whole(1)(devices)
        or (isinstance(devices, list) and devices and all(map(_whole(0), devices)))
    )
    if not ok:
        errors.append(
            f"trainer.devices={devices!r} must be an integer >= 1, -1 or auto (all), or a list "
            "of device indices"
        )
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        errors.append(f"trainer.accelerator={accelerator!r} must be one of {list(ACCELERATORS)}")
    elif accelerator in ("gpu", "cuda"):
        gpus = _gpu_count()
        if gpus == 0:
            errors.append(
                f"trainer.accelerator={accelerator} but no GPU is visible here (torch finds no "
                "CUDA device): use trainer=cpu"
            )
        elif is_integer(devices) and devices > gpus:
            errors.append(f"trainer.devices={devices} but {gpus} GPU(s) are visible here")
    elif accelerator == "mps" and not _mps_available():
        errors.append("trainer.accelerator=mps but torch sees no Apple GPU here: use trainer=cpu")
    for key in ("precision", "strategy"):
        value = str(trainer.get(key, ""))
        for prefix, package in NEEDS_PACKAGE.items():
            if value.startswith(prefix) and not _installed(package):
                errors.append(
                    f"trainer.{key}={value} needs the Python package {package}, which is not "
                    f"installed here: install it or choose another trainer.{key}"
                )
    return errors


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    return torch.backends.mps.is_available()


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def _is_bool(value) -> bool:
    return isinstance(value, bool)


def _whole(least: int, nullable: bool = False):
    def check(value) -> bool:
        if value is None:
            return nullable
        return is_integer(value) and value >= least

    return check


def _text(nullable: bool):
    return lambda value: isinstance(value, str) or (nullable and value is None)


KILL_SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT")

# key: (check, what is allowed). Keys whose meaning other checks cover are not repeated here.
TYPED_KEYS = {
    "data.sort_by_length": (_is_bool, "true or false"),
    "evaluation.generate_every": (_whole(0), "an integer >= 0"),
    "evaluation.max_new_tokens": (_whole(1), "an integer >= 1"),
    "evaluation.num_beams": (_whole(1), "an integer >= 1 (1 = greedy)"),
    "data.train_on_inputs": (_is_bool, "true or false"),
    "evaluation.router_stats_every": (_whole(0), "an integer >= 0"),
    "evaluation.generate_at_start": (_is_bool, "true or false"),
    "evaluation.before_training": (_is_bool, "true or false"),
    "evaluation.validate_at_start": (_is_bool, "true or false"),
    "evaluation.router_stats_per_layer": (_is_bool, "true or false"),
    "trainer.gradient_clip_val": (
        lambda v: v is None or (is_number(v) and v >= 0),
        "null (off) or a number >= 0",
    ),
    "checkpoint.select_by": (
        lambda v: v is None or (isinstance(v, str) and v.startswith("val/")),
        "null or a validation metric such as val/loss or val/acc",
    ),
    "checkpoint.select_mode": (lambda v: v in ("min", "max"), "min or max"),
    "debug.nan_at_step": (_whole(1, True), "null or an integer >= 1"),
    "debug.kill_at_step": (_whole(1, True), "null or an integer >= 1"),
    "debug.kill_signal": (lambda v: v in KILL_SIGNALS, "one of " + ", ".join(KILL_SIGNALS)),
    "max_new_tokens": (_whole(1), "an integer >= 1"),
    "num_beams": (_whole(1), "an integer >= 1 (1 = greedy)"),
    "model.pretrained": (_text(True), "null or a Hub id / local path"),
    "model.trust_remote_code": (_is_bool, "true or false"),
    "model.tiny.vocab_size": (_whole(16), "an integer >= 16"),
    "model.tiny.hidden_size": (_whole(1), "an integer >= 1"),
    "model.tiny.num_layers": (_whole(1), "an integer >= 1"),
    "model.tiny.num_heads": (_whole(1), "an integer >= 1"),
    "model.tiny.num_kv_heads": (_whole(1), "an integer >= 1"),
    "model.tiny.intermediate_size": (_whole(1), "an integer >= 1"),
    "trainer.check_val_every_n_epoch": (_whole(1, True), "null or an integer >= 1"),
    "trainer.num_sanity_val_steps": (_whole(-1), "an integer >= -1 (-1: all)"),
    "trainer.enable_checkpointing": (_is_bool, "true or false"),
    "trainer.deterministic": (_is_bool, "true or false"),
    "logger.wandb.enabled": (_is_bool, "true or false"),
    "logger.wandb.entity": (_text(True), "null or a W&B entity name"),
    "logger.wandb.job_type": (_text(True), "null or a name"),
    "logger.wandb.tags": (
        lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
        "a list of names, e.g. [ablation, cpu]",
    ),
}


def _typed_key_errors(plain: Mapping[str, Any]) -> list[str]:
    """Each key of `TYPED_KEYS` that the config has, checked for its type and range."""
    errors = []
    for key, (ok, allowed) in TYPED_KEYS.items():
        node: Any = plain
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            if not ok(node):
                errors.append(f"{key}={node!r} must be {allowed}")
    return errors
