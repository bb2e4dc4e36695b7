"""``task.answer_form=text``: a task trained to answer with the right option's own text.

The papers' format lists the options and trains a label (``The answer is B.``, ``the correct
answer is answer2``): the model must bind the label to the option it names, which a small model
does not learn from a few thousand questions even when it prefers the right text (docs/results.md,
"Looking for a recipe the embedded model learns from"). Here the prompt is the task's cloze form
(`Task.cloze`: the bare question, e.g. ``Question: ...\\nAnswer:``) and the target is the right
option's text after a space, so what is learnt is the answer itself. Accuracy scores every
option's text whole (mean log-probability per token, as ``cloze`` mode does); generated text
answers with the option whose words it shares most. Predictions keep the task's labels (``B``,
``answer2``), so reports read as in the label form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from loralab.tasks.base import DataError, Task

ANSWER_FORMS = ("label", "text")


@dataclass
class TextAnswers(Task):
    """``inner``'s records, prompted by their cloze form and answered with the option text.
    Each record carries its form under ``cloze`` (read once, when the task is built)."""

    inner: Task = field(default=None, repr=False)
    whole_options: ClassVar[bool] = True

    def prompt(self, record: Mapping[str, Any]) -> str:
        return record["cloze"][0]

    def target(self, record: Mapping[str, Any]) -> str:
        return self.option_targets(record)[self.gold_index(record)]

    def option_targets(self, record: Mapping[str, Any]) -> list[str]:
        return [" " + text for text in record["cloze"][1]]

    def gold_index(self, record: Mapping[str, Any]) -> int:
        return self.inner.gold_index(record)

    def option_labels(self, record: Mapping[str, Any]) -> list[str]:
        return self.inner.option_labels(record)

    def parse(self, record: Mapping[str, Any], text: str) -> str | None:
        """The label of the option whose words best match the output's (F1 over the two word
        sets, case, punctuation and stop words aside), or None when no option shares a word
        with it or two match equally. The prompt lists no options, so a generated answer is
        free text (``the mid-ocean ridges`` for the option ``mid-ocean ridges``)."""
        said = content_words(text)
        scores = []
        for option in record["cloze"][1]:
            words = content_words(option)
            common = len(said & words)
            scores.append(2 * common / (len(said) + len(words)) if common else 0.0)
        best = max(scores)
        if best == 0.0 or scores.count(best) > 1:
            return None
        return self.option_labels(record)[scores.index(best)]

    def cloze(self, record: Mapping[str, Any]) -> tuple[str, list[str]]:
        return record["cloze"]

    def groups(self, record: Mapping[str, Any]) -> dict[str, str]:
        return self.inner.groups(record)


# Words too common to tell options apart ("the sun" and "the moon" share only "the").
_STOP = "a an and are as at be by for from in is it its of on or the to with"
STOP_WORDS = frozenset(_STOP.split())


def content_words(text: str) -> set[str]:
    """Lower-case words and numbers of ``text``, stop words left out."""
    return {word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in STOP_WORDS}


def with_answer_form(task: Task, answer_form: str) -> Task:
    """``task`` itself for ``label`` (the papers' format); its `TextAnswers` for ``text`` (also
    what cloze mode scores). A task or record without a cloze form is a `DataError` naming it."""
    if answer_form == "label":
        return task
    splits = {}
    for split, records in task.splits.items():
        splits[split] = []
        for record in records:
            try:
                form = task.cloze(record)
            except ValueError as err:
                raise DataError(
                    f"task {task.name!r} in its text form (task.answer_form=text, mode=cloze): "
                    f"{err}"
                ) from None
            if form is None:
                raise DataError(
                    f"task {task.name!r} has no text form (its records do not give each "
                    "option's text): use task.answer_form=label and mode=score or generate"
                )
            splits[split].append({**record, "cloze": form})
    return TextAnswers(task.name, splits, inner=task)
