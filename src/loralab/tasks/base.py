"""What a task is to the rest of loralab: records per split, and how each record becomes a
prompt, a target, scored options and a parsed generated answer.

A task knows nothing of models or adapters. `DataError` is what reading a task's data raises. Subclass `Task` for a new record format and
register it (`loralab.tasks.register_task`) to use it from the configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class DataError(ValueError):
    """Unreadable or malformed data: the message names the file, the record and the field."""


@dataclass
class Task:
    name: str
    splits: dict[str, list[dict]] = field(repr=False)
    # True where the options are scored as whole sequences (their texts share first tokens)
    # rather than at the one token where `option_targets` part ways.
    whole_options: ClassVar[bool] = False

    def prompt(self, record: Mapping[str, Any]) -> str:
        """The model's input text."""
        raise NotImplementedError

    def target(self, record: Mapping[str, Any]) -> str:
        """The trained answer text."""
        raise NotImplementedError

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        """The answer text of each option, scored in score mode."""
        raise NotImplementedError

    def gold_index(self, record: Mapping[str, Any]) -> int:
        """Which of `option_targets` is right."""
        raise NotImplementedError

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        """What each option is called in predictions (A, B, ... or the answer words)."""
        raise NotImplementedError

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The label a generated `text` answers with, or None when it does not parse."""
        raise NotImplementedError

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]] | None:
        """The question without its listed options, and each option's own text, for ``cloze``
        mode (the option the model finds most likely as a continuation, no labels to bind);
        None where the task has no such form."""
        return None

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        """What the final table breaks accuracy down by."""
        return {}
