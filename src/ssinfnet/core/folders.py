"""Reading the JSON files of run, evaluation, comparison and mediation folders, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssinfnet.errors import InputError


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is absent or holds something else than an object."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"not valid JSON: {err}", path) from err
    return data if isinstance(data, dict) else {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-empty line (e.g. a run's metrics.jsonl); [] when absent."""
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"line {number} is not valid JSON: {err}", path) from err
    return rows
