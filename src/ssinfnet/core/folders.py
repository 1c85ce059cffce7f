"""Reading text files (YAML, CSV, and the JSON files of run, evaluation, comparison and mediation
folders) with one-line errors: a binary file or one in another encoding is an :class:`InputError`
naming it, never a ``UnicodeDecodeError``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssinfnet.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: Bytes read to tell a text table from binary data, and the share of control bytes (other than
#: tab, line and page breaks) above which it is binary: pandas would parse random bytes as a table.
TEXT_SNIFF_BYTES = 65536
MAX_CONTROL_SHARE = 0.01
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\x0b\x0c\r") + b"\x7f"
#: Separators of tables that are not comma-separated (European spreadsheet exports use ";").
OTHER_SEPARATORS = (";", "\t", "|")


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"not a UTF-8 text file: byte 0x{data[err.start]:02x} at offset {err.start} "
                         "(binary data, or text in another encoding)", path) from None


def read_csv(path: str | Path, **options: Any) -> "pd.DataFrame":
    """The comma-separated table in ``path`` (``pandas.read_csv`` with ``options``), with at least one
    row. Binary data, a file that pandas cannot parse, a header without rows and a table separated by
    ``;`` (or tabs, ``|``: one column whose name holds them) are each one :class:`InputError` naming
    the file; such a table is refused, not guessed at (its numbers may have decimal commas). Bytes
    that are not UTF-8 in a text table become U+FFFD (a Latin-1 export keeps its rows)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    with open(path, "rb") as fh:
        head = fh.read(TEXT_SNIFF_BYTES)
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if b"\0" in head or control > MAX_CONTROL_SHARE * len(head):
        raise InputError(f"not a text CSV table: binary data ({control} control bytes in the first {len(head)}; "
                         "a UTF-16 export must be saved as UTF-8)", path)
    try:
        table = pd.read_csv(path, encoding_errors="replace", **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"not a readable CSV table ({err})", path) from err
    separator = next((s for s in OTHER_SEPARATORS if len(table.columns) == 1 and s in str(table.columns[0])), None)
    if separator is not None:
        raise InputError(f"separated by {separator!r}, not by commas (one column {str(table.columns[0])!r}): "
                         "save it as comma-separated CSV", path)
    if table.empty:
        raise InputError(f"no rows: the table has only its header line ({', '.join(map(str, table.columns))})", path)
    return table


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is absent or holds something else than an object."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err}", path) from err
    return data if isinstance(data, dict) else {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-empty line (e.g. a run's metrics.jsonl); [] when absent."""
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"line {number} is not valid JSON: {err}", path) from err
    return rows
