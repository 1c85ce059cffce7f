"""Atomic writes: a reader never sees a half-written output or checkpoint.

Every writer here works in a temporary file or folder beside its target, named
``.NAME.HOST-pidPID.XXXXXXXX.tmp``, and renames it onto ``NAME`` when done. A process killed
mid-write (SIGKILL, power cut) leaves that temporary behind: :func:`is_temporary` tells readers
that scan folders to skip it, and the writers remove the stale temporaries of their target (whose
process no longer runs) before they write it again (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ssinfnet.errors import InputError

TEMP_SUFFIX = ".tmp"
#: What :func:`atomic_dir` renames the folder it replaces to, until the new one is in place.
OLD_SUFFIX = "-old" + TEMP_SUFFIX
#: A temporary that names no process (written by an older version) is stale after this long.
STALE_AFTER_S = 3600.0
_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9-]+)-pid(?P<pid>\d+)\.")
#: Target names are cut to this length in temporary names (file names have at most 255 bytes).
_NAME_CHARS = 100


def is_temporary(path: str | Path) -> bool:
    """True for the temporary files and folders of these writers (hidden, ``.tmp`` at the end)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and len(name) > len(TEMP_SUFFIX) + 1


def remove_stale_temporaries(folder: str | Path, target: str | None = None) -> list[Path]:
    """Delete the stale temporaries in ``folder`` (only those of ``target`` when given); return them.

    Stale: written on this machine by a process that no longer runs, or naming no process and
    older than :data:`STALE_AFTER_S`. The previous ``target`` folder that an overwrite killed
    between its two renames left aside is put back instead when no ``target`` exists. Temporaries of running processes (this one included) and of
    other machines sharing the folder are left alone until they are that old.
    """
    folder = Path(folder)
    prefix = "." if target is None else f".{target[:_NAME_CHARS]}."
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and is_temporary(e.name)]
    except OSError:  # no folder (yet), or one we cannot list: nothing to clean
        return []
    removed = []
    for entry in entries:
        if _is_stale(entry):
            path = Path(entry.path)
            name = target or _target_of(entry.name)
            if entry.name.endswith(OLD_SUFFIX) and name and not (folder / name).exists():
                os.replace(path, folder / name)  # killed between the two renames of an overwrite: put it back
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _target_of(name: str) -> str | None:
    owner = _OWNER.search(name)
    return name[1 : owner.start()] if owner and owner.start() - 1 < _NAME_CHARS else None


def _is_stale(entry: os.DirEntry) -> bool:
    owner = _OWNER.search(entry.name)
    if owner and owner["host"] == _host():
        return not _process_runs(int(owner["pid"]))
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
    except OSError:
        return False


def _process_runs(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:_NAME_CHARS]}.{_host()}-pid{os.getpid()}."


def _named(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` when it names no file (a failed write() of a full disk) or only this
    module's temporary beside ``path`` (an internal detail); an error about another file is kept."""
    named = err.filename is None or (str(err.filename).startswith(str(path.parent / f".{path.name[:_NAME_CHARS]}."))
                                     and is_temporary(err.filename))
    if not named:
        return err
    return OSError(err.errno, err.strerror or str(err) or type(err).__name__, str(path))


def file_in_the_way(path: str | Path) -> Path | None:
    """The existing file above ``path`` that keeps it from being made (``notes.txt`` for
    ``notes.txt/out``), or None when the nearest existing entry above it is a folder."""
    for parent in Path(path).parents:
        if parent.is_dir():
            return None
        if parent.exists() or parent.is_symlink():
            return parent
    return None


def refuse_file_in_the_way(path: str | Path) -> None:
    """The one-line refusal of an output whose parent is a file, not a folder."""
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise InputError(f"is a file, not a folder, so {path} cannot be written in it", blocker)


def refuse_existing(path: str | Path | None, overwrite: bool = False) -> None:
    """Before any work: refuse an output ``path`` that cannot be written where asked (its parent is a
    file) or that is already there without ``overwrite``. Every verb's ``--out`` goes through it."""
    if path is None:
        return
    refuse_file_in_the_way(path)
    if Path(path).exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", path)


def check_writable(path: str | Path) -> None:
    """Raise the OSError that writing ``path`` (a file or folder to be made) would meet, naming
    ``path``, before any work: the nearest existing folder above it must take a new entry (a file
    there is :func:`refuse_file_in_the_way`'s line). A temporary folder is made there and removed
    (``os.access`` says yes to root on read-only mounts)."""
    refuse_file_in_the_way(path)
    path = Path(path).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if existing == path:
        existing = path if path.is_dir() else path.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=existing))
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None


def _make_parent(path: Path) -> None:
    """Make ``path``'s folder (and those above it); a file in the way is refused naming that file."""
    refuse_file_in_the_way(path)
    path.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched; an OSError
    that names no file (a full disk) is raised naming ``path``. A folder at ``path`` is refused
    before anything is written.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file", str(path))
    try:
        _make_parent(path)
        remove_stale_temporaries(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise _named(err, path)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp_path, path)
    except BaseException as err:
        tmp_path.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _named(err, path)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    Like :func:`atomic_path`, an OSError that names no file is raised naming ``path``.
    """
    path = Path(path)
    try:
        _make_parent(path)
        remove_stale_temporaries(path.parent, path.name)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent))
    except OSError as err:
        raise _named(err, path)
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = tmp.with_name(tmp.name[: -len(TEMP_SUFFIX)] + OLD_SUFFIX)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and not isinstance(err, FileExistsError):
            raise _named(err, path)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fieldnames: list[str] | None = None) -> None:
    rows = list(rows)
    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames.extend(k for k in row if k not in fieldnames)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars/arrays and paths, which results often hold."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
