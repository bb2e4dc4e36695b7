"""A config key declared once: what values it takes and what it does (its default is the YAML
config's, in conf/, stated there only).

Each config group's settings class (a frozen dataclass in this package) declares its keys with
`setting()`. The up-front check (`group_errors`) and ``loralab-train --help`` (`describe_group`)
both read those declarations, so a key's range and its help cannot drift apart. A rule's allowed
values may be computed on demand: some choice tables live in modules that import torch, which
neither a config check of another group nor ``--help`` should wait for before it needs them.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loralab.values import is_integer, is_number


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a key accepts: `ok(value)`, and `allowed`, the words that complete "must be ..."."""

    ok: Callable[[Any], bool]
    allowed: str | Callable[[], str]

    def describe(self) -> str:
        return self.allowed() if callable(self.allowed) else self.allowed


def setting(rule: Rule | None, help: str, *, group: type | None = None):
    """A settings field. rule None: any value (free text such as a name); `group`: the key holds
    a nested group (e.g. model.tiny), checked by that class. No default here: the YAML configs
    hold every default (a key the command's config lacks reads None)."""
    metadata = {"rule": rule, "help": help, "group": group}
    return dataclasses.field(default=None, metadata=metadata)


def _with_note(text: str, note: str) -> str:
    return f"{text} ({note})" if note else text


FLAG = Rule(lambda v: isinstance(v, bool), "true or false")


def whole(least: int, *, nullable: bool = False, note: str = "") -> Rule:
    """An integer >= least (never a bool); nullable: or null."""
    text = f"an integer >= {least}"
    return Rule(
        lambda v: (v is None and nullable) or (is_integer(v) and v >= least),
        _with_note(f"null or {text}" if nullable else text, note),
    )


def number(least: float, *, nullable: str = "", note: str = "") -> Rule:
    """A finite number >= least; nullable: or null, meaning what `nullable` says."""
    text = f"a number >= {least:g}"
    return Rule(
        lambda v: (v is None and bool(nullable)) or (is_number(v) and v >= least),
        _with_note(f"null ({nullable}) or {text}" if nullable else text, note),
    )


def one_of(choices: Sequence[str] | Callable[[], Sequence[str]], note: str = "") -> Rule:
    """One of the names (a sequence, or a function returning one, read when first needed)."""

    def names() -> list:
        return list(choices() if callable(choices) else choices)

    return Rule(lambda v: v in names(), lambda: _with_note(f"one of {names()}", note))


def text(*, nullable: bool, what: str) -> Rule:
    """A string; nullable: or null."""
    return Rule(
        lambda v: isinstance(v, str) or (nullable and v is None),
        f"null or {what}" if nullable else what,
    )


def names_list(example: str) -> Rule:
    return Rule(
        lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v),
        f"a list of names, e.g. {example}",
    )


def group_errors(cls: type, values: Mapping[str, Any], prefix: str) -> list[str]:
    """Each key of `values` that `cls` declares, checked against its rule ("<prefix><key>=<value>
        must be <allowed>"); nested groups recursively; then the group's own checks across its keys (``problems(prefix)``, which passes over values of the wrong type: the
    rules above name those). Keys `cls` does not declare are left alone
        (e.g. the Lightning Trainer arguments loralab passes through)."""
    errors = []
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value, rule, nested = values[field.name], field.metadata["rule"], field.metadata["group"]
        if nested is not None and isinstance(value, Mapping):
            errors += group_errors(nested, value, f"{prefix}{field.name}.")
        elif rule is not None and not rule.ok(value):
            errors.append(f"{prefix}{field.name}={value!r} must be {rule.describe()}")
    if hasattr(cls, "problems"):
        errors += read(cls, values).problems(prefix)
    return errors


def read(cls: type, values: Mapping[str, Any]):
    """The settings object of `values` (keys `cls` does not declare are left out); check first
    with `group_errors`."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in names})


def describe_group(cls: type, values: Mapping[str, Any], prefix: str) -> list[str]:
    """``--help`` lines for a group: each key of `values` with its value now, what it does and
    what it accepts."""
    lines = []
    for field in dataclasses.fields(cls):
        if field.name not in values:  # e.g. loralab-eval's data: has only the evaluation keys
            continue
        value = values[field.name]
        nested = field.metadata.get("group")
        if nested is not None and isinstance(value, Mapping):
            lines += describe_group(nested, value, f"{prefix}{field.name}.")
            continue
        if nested is not None:
            accepts = " [null or its keys]"
        elif "rule" not in field.metadata:  # a class that checks its values itself
            accepts = ""
        else:
            rule = field.metadata["rule"]
            accepts = f" [{rule.describe() if rule is not None else 'any text'}]"
        lines.append(f"  {prefix}{field.name}={_shown(value)}")
        lines += textwrap.wrap(
            field.metadata["help"] + accepts,
            width=100,
            initial_indent=" " * 6,
            subsequent_indent=" " * 6,
        )
    return lines


def _shown(value: Any) -> str:
    """A value as one would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_shown, value)) + "]"
    return str(value)
