"""Where a number came from: the git commit of the code and a fingerprint of the data.

Two fingerprints, for two purposes (never interchangeable, so they have different names and keys):

- :func:`content_fingerprint` (evaluations): sha256 over every byte of the data files. An evaluation's
  numbers get quoted, so a changed mask must change the fingerprint. Keys: path, files, sha256.
- :func:`listing_fingerprint` (training runs): sha256 over each sample's id, file name and file size, not
  the pixels: fast on thousands of files, enough to tell which slices a run trained on. Keys: samples, sha256.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any, Iterable

_CHUNK = 1 << 20


def git_commit() -> str | None:
    """Commit of the checkout the package runs from (None when installed from a wheel)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def content_fingerprint(*paths: str | Path) -> dict[str, Any]:
    """sha256 over the sorted relative file names and the sha256 of each file's contents.

    ``paths`` are what the reader was given (a folder, or files such as a NIfTI volume and its
    label volume).
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


def listing_fingerprint(samples: Iterable[Any]) -> dict[str, Any]:
    """sha256 over each sample's id, source file name and file size (``Sample.meta``; not the pixels)."""
    digest = hashlib.sha256()
    count = 0
    for sample in sorted(samples, key=lambda s: (s.meta.source, s.meta.id)):
        source = Path(sample.meta.source)
        size = source.stat().st_size if source.is_file() else -1
        digest.update(f"{sample.meta.id}\t{source.name}\t{size}\n".encode())
        count += 1
    return {"samples": count, "sha256": digest.hexdigest()}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
