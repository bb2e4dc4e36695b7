"""``--help``'s list of settings, generated from the settings classes (`loralab.cli.settings`), so
each key's help is written once, beside its rule.

Hydra renders each command's help template (conf/hydra/help/); the template calls the
``${settings_help:train}`` / ``${settings_help:eval}`` resolver registered here, which reads the
composed config (overrides included: ``loralab-train experiment=X --help`` shows X's values).
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

# groups checked by their own config classes, shown as their composed YAML
OTHER_GROUPS = {"train": ("adapter", "optimizer", "task"), "eval": ("task",)}


def settings_help(entry: str, _root_: DictConfig) -> str:
    from loralab.cli.settings import EVAL_GROUPS, TRAIN_GROUPS, settings_help

    groups = TRAIN_GROUPS if entry == "train" else EVAL_GROUPS
    plain = {}
    for key in _root_:
        if key != "hydra":  # its ${now:} and ${hydra:} values resolve only in a running job
            value = _root_[key]
            nested = isinstance(value, DictConfig | ListConfig)
            plain[key] = OmegaConf.to_container(value, resolve=True) if nested else value
    text = settings_help(plain, groups)
    others = OTHER_GROUPS[entry]
    shown = {key: plain[key] for key in others if key in plain}
    text += (
        f"\n\n{', '.join(others)} (checked by their own classes: "
        + "loralab.adapters.AdapterConfig, loralab.optim.OptimizerConfig, the task's checks)\n"
        if entry == "train"
        else f"\n\n{', '.join(others)} (checked by the task's own checks)\n"
    ) + OmegaConf.to_yaml(shown)
    return text.replace("$", "$$")  # Hydra fills the template with string.Template
