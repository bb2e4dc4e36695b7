"""The commands (``loralab-train``, ``-eval``, ``-figures``, ``-export``) and their plumbing:
config checking, console and exit codes, progress display, precision choice, plugins.

One module per command; a command module imports the plumbing here and the floors below
(``runs``, ``module``, ``evaluation``, ``optim``, ``adapters``, ``data``, ``tasks``,
``models``), never another command module.
"""
