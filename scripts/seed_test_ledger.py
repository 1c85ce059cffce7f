"""Seed the test ledger (``results/test-ledger.csv``, :mod:`ssinfnet.evaluation.ledger`) with the scorings of
the COVID-SemiSeg test split made before it existed, as the committed result files record them.

    python scripts/seed_test_ledger.py            # writes results/test-ledger.csv; refuses when it exists
    python scripts/seed_test_ledger.py --print    # the rows, written nowhere

A scoring: an evaluation summary under ``results/`` or the bundle's ``metrics.json`` (``model``, ``metrics``
and ``data``) with ``data.split`` "test" and ``data.sha256`` the whole ``covid-semiseg`` folder's content
fingerprint (:data:`~ssinfnet.evaluation.ledger.SEMISEG_FOLDER_SHA256`; those summaries predate the images
fingerprint). Copies of one evaluation (same code commit, run names, prediction, threshold and data) are one
scoring, one row, naming every copy. Only the files as they are now: a scoring whose summary was later
overwritten survives only in git history and is not seeded.

The summaries hold no date. ``date`` is an ISO 8601 interval, ``START/END``: START the committer date of the
code commit the summary names (``git_commit``: the scoring ran that code, so not before it), END the date of
the earliest repository commit of a copy that records that code commit (the scoring was done by then); a side
git cannot date is left empty. ``prediction`` is the summary's own (empty where it predates the raw/product
choice). ``purpose`` is not recorded in the summaries: "not recorded" except for the evaluations that
``results/2026-12-01-crossval/ship_gate.py`` read to decide (:data:`DECIDED`, from the follow-up runs'
``run.sh``, step 4).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from ssinfnet.evaluation.ledger import SEMISEG_FOLDER_SHA256, format_rows, make_row, model_label
from ssinfnet.fileio import write_text

REPO = Path(__file__).resolve().parents[1]
NOT_RECORDED = "not recorded (seeded)"
BUNDLE_METRICS = "src/ssinfnet/weights/default/metrics.json"
_GATE = "shipping decision by ship_gate.py (its test criteria, since retired): "
#: The committed evaluations whose test numbers ship_gate.py read to decide whether to ship.
DECIDED = {
    "results/2026-12-01-weighted-mining/eval-mined-w25-candidate.json": _GATE + "the candidate's infection F1 >= 0.72",
    "results/2026-12-01-specificity-finetune/eval-ft-mined-candidate.json":
        _GATE + "the candidate's infection F1 >= 0.72 and Inf-Net Dice at most 0.01 below the shipped model's",
    "results/2026-12-01-specificity-finetune/eval-shipped.json": _GATE + "the shipped model's Inf-Net Dice",
}


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def utc(date: str) -> str:
    return datetime.fromisoformat(date).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if date else ""


def summaries(repo: Path = REPO) -> list[Path]:
    """The committed evaluation summaries of the test split: under ``results/`` and the bundle's metrics."""
    found = []
    for path in [*sorted((repo / "results").rglob("*.json")), repo / BUNDLE_METRICS]:
        try:
            summary = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        data = summary.get("data") if isinstance(summary, dict) else None
        if (isinstance(data, dict) and "model" in summary and "metrics" in summary and data.get("split") == "test"
                and data.get("sha256") == SEMISEG_FOLDER_SHA256):
            found.append(path)
    return found


def scoring_key(summary: dict) -> tuple:
    """What tells one scoring from another: code, model (run names), prediction, threshold, data. Copies of
    one evaluation (a summary copied into two folders, or into the bundle's metrics) share it."""
    return (summary.get("git_commit"), model_label(summary["model"]), summary.get("prediction"),
            summary.get("threshold"), summary["data"]["sha256"])


def written(file: str, commit: str) -> str:
    """UTC date of the earliest repository commit whose version of ``file`` records code commit ``commit``."""
    for line in reversed(git("log", "--format=%H %cI", "--", file).splitlines()):
        sha, date = line.split()
        try:
            if json.loads(git("show", f"{sha}:{file}") or "{}").get("git_commit") == commit:
                return utc(date)
        except json.JSONDecodeError:
            continue
    return ""


def seed_rows(repo: Path = REPO) -> list[dict[str, str]]:
    """One row per scoring, ordered by date and then by its files' paths."""
    groups: dict[tuple, list[str]] = {}
    for path in summaries(repo):
        groups.setdefault(scoring_key(json.loads(path.read_text())), []).append(path.relative_to(repo).as_posix())
    rows = []
    for files in groups.values():
        summary = json.loads((repo / files[0]).read_text())
        commit = summary.get("git_commit") or ""
        start = utc(git("show", "-s", "--format=%cI", f"{commit}^{{commit}}") if commit else "")
        end = min(filter(None, (written(file, commit) for file in files)), default="")
        purpose = "; ".join(DECIDED[f] for f in files if f in DECIDED) or NOT_RECORDED
        rows.append(make_row(summary["model"], commit=commit, prediction=summary.get("prediction", ""),
                             purpose=purpose, data_sha256=summary["data"]["sha256"], record="; ".join(files),
                             date=f"{start}/{end}"))
    return sorted(rows, key=lambda row: (row["date"], row["record"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the rows instead of writing the ledger")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "test-ledger.csv")
    args = parser.parse_args(argv)
    text = format_rows(seed_rows(), header=True)
    if args.print:
        print(text, end="")
        return 0
    if args.out.exists():
        print(f"{args.out} exists: the ledger is seeded once, then only appended to", file=sys.stderr)
        return 1
    write_text(args.out, text)
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
