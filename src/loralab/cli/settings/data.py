"""The data settings (conf/train.yaml's data:, conf/eval.yaml's): how examples become batches."""

from __future__ import annotations

from dataclasses import dataclass

from loralab.cli.settings.fields import FLAG, one_of, setting, whole


def _overflow_modes():
    from loralab.data.encoding import OVERFLOW_MODES

    return OVERFLOW_MODES


def _target_layouts():
    from loralab.data.encoding import TARGET_LAYOUTS

    return TARGET_LAYOUTS


@dataclass(frozen=True)
class DataSettings:
    """data: batching, lengths and which tokens the training loss covers."""

    batch_size: int = setting(whole(1), "training examples per batch, per device")
    eval_batch_size: int = setting(whole(1), "examples per evaluation batch")
    max_length: int = setting(
        whole(16),
        "prompt + answer tokens; an over-long prompt is cut on the context side",
    )
    overflow: str = setting(
        one_of(_overflow_modes), "truncate | drop (dropped examples are counted)"
    )
    target_layout: str = setting(
        one_of(_target_layouts),
        "loralab: answer + EOS, cut on the context side | reference: the paper code's labels "
        "(BOS a target, no EOS, cut on the right)",
    )
    sort_by_length: bool = setting(
        FLAG, "group training batches by length (less padding); order still random"
    )
    train_on_inputs: bool = setting(
        FLAG,
        "the training loss covers prompt and answer (MoSLoRA's reference), not the answer only",
    )
