"""``--help``'s list of settings, generated from the settings classes (`loralab.cli.settings`), so
each key's help is written once, beside its rule.

Hydra renders each command's help template (conf/hydra/help/); the template calls the
``${settings_help:train}`` / ``${settings_help:eval}`` resolver registered here, which reads the
composed config (overrides included: ``loralab-train experiment=X --help`` shows X's values).
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

# groups whose classes carry no help per key, shown as their composed YAML
OTHER_GROUPS = {"train": ("task",), "eval": ("task",)}


def settings_help(entry: str, _root_: DictConfig) -> str:
    from loralab.adapters import AdapterConfig
    from loralab.cli.settings import EVAL_GROUPS, TRAIN_GROUPS, settings_help
    from loralab.optim import OptimizerConfig

    groups = EVAL_GROUPS
    if entry == "train":  # the adapter's keys after the model's
        first = ("", "model")
        groups = {key: TRAIN_GROUPS[key] for key in first}
        groups |= {"adapter": AdapterConfig, "optimizer": OptimizerConfig}
        groups |= {key: cls for key, cls in TRAIN_GROUPS.items() if key not in first}
    plain = {}
    for key in _root_:
        if key != "hydra":  # its ${now:} and ${hydra:} values resolve only in a running job
            value = _root_[key]
            nested = isinstance(value, DictConfig | ListConfig)
            plain[key] = OmegaConf.to_container(value, resolve=True) if nested else value
    text = settings_help(plain, groups)
    others = OTHER_GROUPS[entry]
    shown = {key: plain[key] for key in others if key in plain}
    text += "\n\ntask: the task's data and prompt form (each task checks its own keys)\n"
    text += OmegaConf.to_yaml(shown)
    return text.replace("$", "$$")  # Hydra fills the template with string.Template
