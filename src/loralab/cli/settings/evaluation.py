"""The evaluation settings (conf/train.yaml's evaluation:): what a training run measures when."""

from __future__ import annotations

from dataclasses import dataclass

from loralab.cli.settings.fields import FLAG, one_of, setting, whole


def _splits():
    from loralab.tasks import SPLITS

    return SPLITS


@dataclass(frozen=True)
class EvaluationSettings:
    """evaluation: test accuracy before and after training, validation, generated answers and
    router statistics during it."""

    before_training: bool = setting(
        FLAG, "test-split accuracy of the untrained model, logged at step 0"
    )
    validate_at_start: bool = setting(
        FLAG,
        "a validation pass at step 0 (as the reference), then every trainer.val_check_interval",
    )
    router_stats_every: int = setting(whole(0), "log router/* statistics every N steps (0 = never)")
    router_stats_per_layer: bool = setting(
        FLAG, "also entropy and max load per adapted layer (2 columns each)"
    )
    generate_every: int = setting(
        whole(0),
        "the paper's accuracy curve: greedy generation + its parser on generate_split, at step "
        "0 and every N optimizer steps (0 = never)",
    )
    generate_at_start: bool = setting(
        FLAG,
        "false: skip step 0's generation (the untrained model is the same for every run of a "
        "grid: measure it once with loralab-eval mode=generate)",
    )
    generate_split: str = setting(one_of(_splits), "the split generate_every reads")
    max_new_tokens: int = setting(
        whole(1), "generated tokens per problem (Sun et al.: 10; MoSLoRA: 32)"
    )
    num_beams: int = setting(
        whole(1, note="1 = greedy"),
        "1: greedy decoding (Sun et al.) | > 1: beam search (MoSLoRA: 4)",
    )
