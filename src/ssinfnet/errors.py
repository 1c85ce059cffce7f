"""Errors caused by what a user handed us, shown as one line that names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: a file, folder or value the user gave us that we cannot use.

    The CLI prints ``str(err)`` as one line (``<path>: <problem>``) and exits with code 2;
    no traceback unless ``--debug``.
    """

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem
