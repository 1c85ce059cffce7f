"""The test ledger: every scoring of the COVID-SemiSeg test split leaves one row in ``results/test-ledger.csv``.

The 48 test slices are for reporting, never for choosing. The ledger makes their use visible: one row per
scoring (when, which code, which model, which prediction, what for), appended whether or not the numbers
are kept. Nothing in the project reads test numbers to decide.

Recognised by content, not by name: :func:`images_fingerprint` is the sha256 over the sorted sha256 digests
of the image files the scored samples were read from (no file or folder names, masks left out: the same 48
images are scored with binary or multi-class masks), so the split is recognised in whatever folder or layout
it sits. :data:`TEST_SPLIT_SHA256` is that fingerprint for the 48 images of ``TestingSet`` in
COVID-SemiSeg (identical in ``LungInfection-Test/Imgs`` and ``MultiClassInfection-Test/Imgs``); computed with

    python -c "from ssinfnet.data.readers import read_semiseg; from ssinfnet.evaluation.ledger import \\
        images_fingerprint; print(images_fingerprint(read_semiseg('../shared/data/covid-semiseg', 'test')))"

``tests/test_ledger.py`` checks both constants against the shared data when it is there. Not recognised:
the test images re-encoded (another format or bit depth) or mixed with other images (only the exact set of 48).

Where the ledger is (:func:`ledger_path`): ``--ledger PATH``, else the environment variable
:data:`LEDGER_ENV`, else ``results/test-ledger.csv`` of the source checkout the package runs from. An
installed package without a checkout and without either records nothing and says so in one line.
Rows are appended under an exclusive lock (``fcntl.flock``) on the ledger itself, one ``write`` each, so
concurrent scorings neither interleave nor drop rows; the rows already there are never rewritten.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from ssinfnet.errors import InputError
from ssinfnet.fileio import check_writable

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: appends are single writes, unlocked
    fcntl = None

#: images_fingerprint of COVID-SemiSeg's 48 test images (module docstring: how it was computed).
TEST_SPLIT_SHA256 = "fc0bb4f59afee054e590ffacf2502b582a3c6f91eb6f5b6bf2590cebb0c1f2f8"
TEST_SPLIT_IMAGES = 48
#: ``core.provenance.content_fingerprint`` of the whole ``covid-semiseg`` folder: what the summaries written
#: before the ledger record (``data.sha256``) when they scored its test split; used to seed the ledger.
SEMISEG_FOLDER_SHA256 = "a4edc8f50e0a29eb67aa02ef2a914cfbda93182e688dcea0dfafa0b3c6e6e844"
LEDGER_ENV = "SSINFNET_TEST_LEDGER"
COLUMNS = ("date", "commit", "model", "model_sha256", "prediction", "purpose", "data_sha256", "record")
DEFAULT_PURPOSE = "report"
_HEADER = (",".join(COLUMNS) + "\n").encode()


def images_fingerprint(samples: Iterable[Any]) -> str:
    """sha256 over the sorted, distinct sha256 digests of the samples' source files (``meta.source``; a
    DICOM series folder: every file in it). Names and order do not count."""
    digests = set()
    for source in {Path(sample.meta.source) for sample in samples}:
        for file in sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]:
            with open(file, "rb") as fh:
                digests.add(hashlib.file_digest(fh, "sha256").hexdigest())
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def is_test_split(samples: list[Any]) -> bool:
    """True when ``samples`` are exactly COVID-SemiSeg's 48 test images (hashed only when 48 samples)."""
    return len(samples) == TEST_SPLIT_IMAGES and images_fingerprint(samples) == TEST_SPLIT_SHA256


def checkout_ledger() -> Path | None:
    """``results/test-ledger.csv`` of the source checkout this package runs from; None when installed."""
    root = Path(__file__).resolve().parents[3]  # <root>/src/ssinfnet/evaluation/ledger.py
    if (root / ".git").exists() and (root / "src" / "ssinfnet").is_dir():
        return root / "results" / "test-ledger.csv"
    return None


def ledger_path(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, else ``$SSINFNET_TEST_LEDGER``, else :func:`checkout_ledger`."""
    chosen = explicit or os.environ.get(LEDGER_ENV)
    return Path(chosen) if chosen else checkout_ledger()


def model_label(description: Mapping[str, Any]) -> str:
    """The pipeline folder name and the run folder names of an evaluation's ``model`` record."""
    runs: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, Mapping):
            for k, value in node.items():
                walk(value, k)
        elif isinstance(node, list):
            for value in node:
                walk(value, key)
        elif key in ("path", "multi_runs") and isinstance(node, str) and node not in runs:
            runs.append(node)

    walk({k: v for k, v in description.items() if k != "pipeline"})
    name = description.get("pipeline")
    return f"{name} ({', '.join(runs)})" if name and runs else name or ", ".join(runs)


def model_sha256(description: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the ``model`` record as canonical JSON (names, configs, sizes)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:12]


def make_row(description: Mapping[str, Any], *, commit: str | None, prediction: str, purpose: str,
             data_sha256: str, record: str, date: str | None = None) -> dict[str, str]:
    """One ledger row; ``date`` defaults to now (UTC, ISO 8601, seconds)."""
    date = date or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"date": date, "commit": commit or "", "model": model_label(description),
            "model_sha256": model_sha256(description), "prediction": prediction, "purpose": purpose,
            "data_sha256": data_sha256, "record": record}


def format_rows(rows: Iterable[Mapping[str, str]], header: bool = False) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")  # header: _HEADER
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def check(path: Path) -> None:
    """Before any work: ``path`` can take a row (a ledger with :data:`COLUMNS` as header, or a new file)."""
    if path.is_dir():
        raise InputError("is a folder, not a test ledger file", path)
    if path.is_file():
        with open(path, "rb") as fh:
            _check_header(fh.read(len(_HEADER)), path)
    else:
        check_writable(path)


def _check_header(start: bytes, path: Path) -> None:
    if start and not start.startswith(_HEADER):
        raise InputError(f"is not a test ledger (its header is not {','.join(COLUMNS)})", path)


def append(path: str | Path, row: Mapping[str, str]) -> None:
    """Append ``row`` to the ledger at ``path`` (made with its header when absent) under an exclusive lock;
    a file whose header is not :data:`COLUMNS` is refused (one line), never appended to."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        with open(fd, "rb", closefd=False) as fh:
            existing = fh.read()
        _check_header(existing, path)
        text = format_rows([row], header=not existing)
        if existing and not existing.endswith(b"\n"):
            text = "\n" + text  # a writer killed mid-line: its fragment stays, on a line of its own
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock


@dataclass
class PendingRow:
    """A scoring of the test split about to happen; ``path`` None: no ledger (an installed package)."""

    path: Path | None

    def record(self, description: Mapping[str, Any], **fields: str | None) -> str:
        """Append the row (:func:`make_row` ``fields``); return the line that says where, or that nowhere."""
        if self.path is None:
            return (f"note: this scored the COVID-SemiSeg test split; no test ledger recorded it (not a source "
                    f"checkout: --ledger or {LEDGER_ENV} names one)")
        append(self.path, make_row(description, **fields))
        return f"COVID-SemiSeg test split: recorded in the test ledger {self.path} (purpose: {fields['purpose']})"


def ledger_for(samples: list[Any], ledger: str | Path | None = None) -> PendingRow | None:
    """None unless ``samples`` are the test split; else its ledger (:func:`ledger_path`), checked now, before
    the minutes of prediction, so that a scoring is never left without its row."""
    if not is_test_split(samples):
        return None
    path = ledger_path(ledger)
    if path is not None:
        check(path)
    return PendingRow(path)
