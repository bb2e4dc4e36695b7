"""Config files are plain YAML: a tag such as ``!!python/object`` is refused in one line.

PyYAML's safe loader, which Hydra reads config files with, already refuses tags it has no
constructor for; but Hydra prints that refusal as an 80-line traceback of its own loading
code. `refuse_yaml_tags` makes it a Hydra error of one line naming the file, the line and the
tag (an entry point turns it into exit 2).
"""

from __future__ import annotations

import yaml
from hydra.errors import CompactHydraException

YAML_PREFIX = "tag:yaml.org,2002:"


class YamlTagError(yaml.constructor.ConstructorError, CompactHydraException):
    """A tag in a config file. Still a YAML error, for code that catches those."""

    def __str__(self) -> str:
        return str(self.problem)


def refuse_yaml_tags() -> None:
    """From now on, in this process, a YAML tag without a safe constructor raises
    `YamlTagError` (the tags of plain values, such as ``!!str``, load as before)."""
    yaml.SafeLoader.add_constructor(None, _refuse)


def _refuse(loader, node) -> None:
    mark = node.start_mark
    tag = node.tag.replace(YAML_PREFIX, "!!", 1)
    raise YamlTagError(
        problem=f"{mark.name}, line {mark.line + 1}: the YAML tag {tag} is not allowed in a "
        "config; write the value itself (a number, a string, a list or a mapping)",
        problem_mark=mark,
    )
