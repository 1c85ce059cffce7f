"""Errors caused by what a user handed us, shown as one line that names the file and the problem."""

from __future__ import annotations

import errno
import re
from pathlib import Path

#: The longest problem text shown; longer ones (a listing of 500 files, a library's dump) keep
#: their start and end around a note of how much was left out.
MAX_PROBLEM_CHARS = 600


class InputError(Exception):
    """Bad input: a file, folder or value the user gave us that we cannot use.

    The CLI prints ``str(err)`` as one line (``<path>: <problem>``) and exits with code 2;
    no traceback unless ``--debug``. ``problem`` is kept as given; ``str()`` folds line breaks
    (a YAML or nibabel message) into one line and shortens a very long problem.
    """

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = None if path is None else printable(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        problem = one_line(printable(self.problem))
        return f"{self.path}: {problem}" if self.path else problem


def one_line(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """``text`` on one line (line breaks and runs of blanks become one space, ``^`` markers of
    parsers dropped), at most ``limit`` characters plus a note of what was left out."""
    text = re.sub(r"\s*\n\s*\^*\s*", " ", str(text).strip())
    text = re.sub(r"[ \t]{2,}", " ", text)
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 3 // 4], text[-(limit // 4):]
    return f"{head.rstrip()} ... ({len(text) - len(head) - len(tail)} characters left out) ... {tail.lstrip()}"


def printable(text: str | Path) -> str:
    """Text (a path, or a problem quoting one) that prints: bytes of a file name that are not UTF-8
    are shown as ``\\xNN`` instead of making the error message itself unprintable."""
    text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # surrogates that stand for no byte
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: Problems named by the CLI for file-system errors (read-only disk, full disk, a folder in the way...).
_OS_PROBLEMS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "cannot write: read-only file system",
    errno.ENOSPC: "cannot write: no space left on device",
    errno.EDQUOT: "cannot write: disk quota exceeded",
    errno.EISDIR: "is a folder; expected a file",
    errno.ENOTDIR: "a file is in the way where a folder is expected",
    errno.EEXIST: "already exists",
    errno.ENOENT: "not found",
    errno.ENAMETOOLONG: "file name too long",
}


def from_os_error(err: OSError) -> InputError:
    """An OSError of a failed read or write as an InputError naming its path and the problem."""
    problem = _OS_PROBLEMS.get(err.errno) or (err.strerror or str(err) or type(err).__name__)
    # os.replace(tmp, target) onto a folder names the target second
    path = err.filename2 if err.errno == errno.EISDIR and err.filename2 else err.filename
    return InputError(problem, path)
