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
import traceback


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
        except Exception as err:  # a plugin's own code may raise anything while it is imported
            raise PluginError(_why(name, err)) from None


def _why(name: str, err: Exception) -> str:
    """Why module `name` did not import, in one line: not found, or its own error and line."""
    if isinstance(err, ModuleNotFoundError) and f"{name}.".startswith(f"{err.name}."):
        return (
            f"plugins: cannot import {name!r} ({err}); run from its folder or add that folder "
            "to PYTHONPATH"
        )
    if isinstance(err, SyntaxError):
        return (
            f"plugins: {name!r} has a syntax error: {err.msg} ({err.filename}, line {err.lineno})"
        )
    # the plugin's own frames: the first file the import ran, its deepest line
    frames = [
        frame
        for frame in traceback.extract_tb(err.__traceback__)
        if frame.filename != __file__ and "importlib" not in frame.filename
    ]
    own = [frame for frame in frames if frame.filename == frames[0].filename] if frames else []
    where = f" ({own[-1].filename}, line {own[-1].lineno})" if own else ""
    return f"plugins: importing {name!r} failed: {type(err).__name__}: {err}{where}"
