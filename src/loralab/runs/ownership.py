"""A run directory has one owner: the process that holds its lock file.

Two processes writing one run directory mixed their metrics rows and overwrote each other's
adapter. The lock is an advisory ``flock`` on ``<run dir>/.lock``, held from the moment every
check has passed until the process exits (the kernel drops it when the process dies, so a
killed run never leaves a stale lock behind). A second process is refused before it writes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from hydra.experimental.callback import Callback

LOCK_FILE = ".lock"


class RunDirectoryBusyError(RuntimeError):
    """Another process holds the run directory's lock."""


class RunLock:
    """``acquire()`` takes ``<run_dir>/.lock`` or raises ``RunDirectoryBusyError`` naming the
    holder; ``release()`` (also at exit) lets go and removes the file."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._handle = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")  # noqa: SIM115  (held open for the run's lifetime)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirectoryBusyError(
                f"{self.path.parent} is in use by {holder}: two runs in one directory would "
                "mix their metrics and outputs; wait for it to finish or choose another "
                "hydra.run.dir (nothing was written)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


class NoteExistingFolders(Callback):
    """A Hydra callback (``hydra.callbacks`` in conf/train.yaml): before Hydra creates the run
    (or sweep) directory, note the deepest folder of its path that already exists, so a
    refused command can remove exactly the folders Hydra made for it."""

    def on_run_start(self, config, **kwargs) -> None:
        _note_existing(config.hydra.run.dir)

    def on_multirun_start(self, config, **kwargs) -> None:
        _note_existing(config.hydra.sweep.dir)


_existing: Path | None = None  # the deepest folder of the run directory's path found existing


def _note_existing(folder) -> None:
    global _existing
    folder = Path(str(folder)).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    _existing = folder


def remove_if_made_by_us(folder: Path) -> None:
    """Remove ``folder`` and then its parents while each is empty and was created by Hydra
    for this command (below the folder ``NoteExistingFolders`` found): Hydra creates the run
    directory before the task runs, so a refused command would otherwise leave an empty run
    folder behind (which then breaks globs such as ``loralab-figures outputs/*/``)."""
    folder = Path(folder).absolute()
    while _existing is not None and _existing in folder.parents:
        try:
            folder.rmdir()  # only an empty folder
        except OSError:
            return
        folder = folder.parent
