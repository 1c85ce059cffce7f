"""What an evaluation was run on: a fingerprint of the data files, so two numbers can be trusted
to come from the same images (or shown not to)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def data_fingerprint(*paths: str | Path) -> dict[str, Any]:
    """sha256 over the sorted relative file names and the sha256 of each file's contents.

    ``paths`` are what the reader was given (a folder, or files such as a NIfTI volume and its
    label volume). Unlike the training runs' quick fingerprint (names and sizes), this reads every
    byte: an evaluation's numbers get quoted, so a changed mask must change the fingerprint.
    """
    digest = hashlib.sha256()
    count = 0
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            name = file.relative_to(root).as_posix() if root.is_dir() else file.name
            digest.update(f"{name}\t{_file_sha256(file)}\n".encode())
        count += len(files)
    # Names only: a shipped summary must not carry the machine's absolute paths (the sha256 identifies the data).
    return {"path": [Path(p).resolve().name for p in paths], "files": count, "sha256": digest.hexdigest()}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
