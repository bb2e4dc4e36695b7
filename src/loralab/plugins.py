"""`plugins`: the user's Python modules, imported before a config is checked.

A plugin registers what loralab does not ship: a task (`loralab.tasks.register_task`), an
optimizer variant (`loralab.optim.register_variant`) or an adapter kind
(`loralab.adapters.register_adapter_kind`). Its configs come from the user's own config
directory (Hydra's `--config-dir`). Modules are found on the Python path; the working directory
is on it, as for `python -m`.
"""

from __future__ import annotations

import importlib
import os
import sys


class PluginError(ImportError):
    """A module listed in `plugins` could not be imported (the message says which and why)."""


def import_plugins(names) -> None:
    if not names:
        return
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise PluginError(
            f"plugins={names!r} must be a list of module names, e.g. plugins=[my_optimizers]"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise PluginError(
                f"plugins: cannot import {name!r} ({err}); run from its folder or add that "
                "folder to PYTHONPATH"
            ) from None
