"""How high can the held-out detection AUC go under the pool's labels? A blinded read, then arithmetic. Not a test.

``benchmarks/bench_specificity.py`` scores the held-out pool's COVID vs NonCOVID slices by their predicted
lesion share. Its labels come from the source collections, and in the "hospital slices" source a COVID label
does not say that the slice shows a lesion, nor a NonCOVID label that it shows none. This script measures how
often that happens and what it means for any model:

1. ``sheets``: a seeded random sample of the held-out hospital slices (the same number per label), shuffled,
   drawn as numbered contact sheets without their labels, and ``reads.csv`` (tile, file, an empty read) for a
   reader to fill in: ``opacity`` (a visible ground-glass opacity, consolidation, fibrosis or mass),
   ``none`` or ``unsure``.
2. ``ceiling``: the reads joined with the labels. From the share of COVID slices with a visible opacity
   (p_covid) and of NonCOVID slices with one (p_noncovid), the AUC of a detector that finds every visible
   opacity perfectly and nothing else, with ties (both or neither) counting one half:

       AUC = p_covid (1 - p_noncovid) + (p_covid p_noncovid + (1 - p_covid)(1 - p_noncovid)) / 2

   for an opacity detector (what a lesion share is), and with p_noncovid = 0 for one that could even tell
   COVID-19 from every other disease. "Unsure" reads count as an opacity on COVID slices and as none on
   NonCOVID slices, the direction that raises the ceiling. For the whole held-out pool the other sources are
   taken as perfectly separable (every COVID slice shows an opacity, no NonCOVID slice does): an upper bound.
   95% intervals by resampling the reads within each label.
3. ``ceiling --model PIPELINE`` (``default``: the bundled model) also segments the audited slices and gives the
   model's detection AUC of its lesion share on them twice: against the labels, and against the reads (opacity
   vs none; unsure reads left out), i.e. how well it finds what the slices show.

    .venv/bin/python benchmarks/pool_audit.py sheets --out /tmp/audit        # then fill /tmp/audit/reads.csv
    .venv/bin/python benchmarks/pool_audit.py ceiling --reads results/benchmarks/pool-audit-reads.csv \\
        --model default   # -> results/benchmarks/pool-audit.{json,md}
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

import numpy as np

from bench_specificity import bootstrap_auc, pool_scores, source_of
from realscan_common import REPO, command, load, markdown_table, parse_models
from ssinfnet.data.pool import HELDOUT_FRACTION, PoolFile, split_pool
from ssinfnet.errors import InputError
from ssinfnet.fileio import atomic_path, write_csv, write_json, write_text

SOURCE = "hospital slices"
READS = ("opacity", "none", "unsure")
BOOTSTRAPS = 2000
TILE, GRID = 300, (4, 3)  # px per tile; tiles per row, rows per sheet


def binary_auc(p_covid: float, p_noncovid: float) -> float:
    """AUC of a 0/1 score that is 1 on a share p_covid of positives and p_noncovid of negatives (ties 1/2)."""
    return p_covid * (1 - p_noncovid) + 0.5 * (p_covid * p_noncovid + (1 - p_covid) * (1 - p_noncovid))


def pooled_ceiling(p_covid: float, p_noncovid: float, counts: Counter) -> float:
    """:func:`binary_auc` over the whole held-out pool: the audited source's slices at the audited shares,
    every other source's COVID slices scored 1 and NonCOVID slices 0."""
    covid = sum(n for (source, label), n in counts.items() if label == "COVID")
    noncovid = sum(n for (source, label), n in counts.items() if label == "NonCOVID")
    covid_scored = covid - counts[(SOURCE, "COVID")] * (1 - p_covid)
    noncovid_scored = counts[(SOURCE, "NonCOVID")] * p_noncovid
    return binary_auc(covid_scored / covid, noncovid_scored / noncovid)


def ceilings(p_covid: float, p_noncovid: float, counts: Counter) -> tuple[float, ...]:
    """The four ceilings of :data:`CEILINGS`, in its order."""
    return (binary_auc(p_covid, p_noncovid), binary_auc(p_covid, 0.0),
            pooled_ceiling(p_covid, p_noncovid, counts), pooled_ceiling(p_covid, 0.0, counts))


#: What :func:`ceilings` returns: a perfect opacity detector (p_noncovid as read) and a COVID-specific one
#: (p_noncovid = 0), on the audited source and on the whole held-out pool.
CEILINGS = ("perfect opacity detector, hospital slices", "perfect COVID-specific detector, hospital slices",
            "perfect opacity detector, whole held-out pool (at most)",
            "perfect COVID-specific detector, whole held-out pool (at most)")


def _heldout(data: Path):
    _, heldout = split_pool(data / "unlabeled-ct", HELDOUT_FRACTION)
    return heldout


def write_sheets(data: Path, out: Path, per_label: int, seed: int) -> None:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    audited = sorted((item for item in _heldout(data) if source_of(item.path.name) == SOURCE), key=lambda item: str(item.path))
    chosen = []
    for label in ("COVID", "NonCOVID"):
        pool = [item for item in audited if item.label == label]
        chosen += [pool[i] for i in rng.choice(len(pool), min(per_label, len(pool)), replace=False)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    out.mkdir(parents=True, exist_ok=True)
    per_sheet = GRID[0] * GRID[1]
    for first in range(0, len(chosen), per_sheet):
        sheet = Image.new("L", (GRID[0] * TILE, GRID[1] * TILE), 0)
        draw = ImageDraw.Draw(sheet)
        for k, item in enumerate(chosen[first:first + per_sheet]):
            tile = Image.open(item.path).convert("L")
            tile.thumbnail((TILE - 4, TILE - 4))
            x, y = (k % GRID[0]) * TILE, (k // GRID[0]) * TILE
            sheet.paste(tile, (x + 2, y + 2))
            draw.text((x + 5, y + 5), str(first + k), fill=255)
        with atomic_path(out / f"sheet{first // per_sheet}.png") as tmp:
            sheet.save(tmp, format="PNG")
    root = data / "unlabeled-ct"
    write_csv(out / "reads.csv", [{"tile": t, "file": item.path.relative_to(root).as_posix(), "read": ""}
                                  for t, item in enumerate(chosen)])
    print(f"{len(chosen)} slices on {-(-len(chosen) // per_sheet)} sheets in {out}; fill in {out / 'reads.csv'}")


def _shares(reads: dict[str, np.ndarray]) -> tuple[float, float]:
    return float(np.mean(reads["COVID"] != "none")), float(np.mean(reads["NonCOVID"] == "opacity"))


def model_aucs(model: str, data: Path, rows: list[dict], labels: dict[str, str]) -> dict:
    """The model's lesion-share AUC on the audited slices: against their labels, and against the reads."""
    from sklearn.metrics import roc_auc_score

    root = data / "unlabeled-ct"
    items = [PoolFile(root / r["file"], labels[r["file"]]) for r in rows]
    shares, covid, _, _ = pool_scores(load(parse_models([model])[0][1]), items)
    read = np.asarray([r["read"] for r in rows])
    sure = read != "unsure"
    opacity = read[sure] == "opacity"
    return {"model": model,
            "vs_labels": {"auc": float(roc_auc_score(covid, shares)), "ci95": bootstrap_auc(covid, shares), "slices": len(rows)},
            "vs_reads": {"auc": float(roc_auc_score(opacity, shares[sure])), "ci95": bootstrap_auc(opacity, shares[sure]),
                         "slices": int(sure.sum())}}


def ceiling(data: Path, reads_path: Path, out: Path, model: str | None = None) -> None:
    heldout = _heldout(data)
    labels = {item.path.relative_to(data / "unlabeled-ct").as_posix(): item.label for item in heldout}
    with open(reads_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    bad = [r for r in rows if r["read"] not in READS or r["file"] not in labels]
    if bad:
        raise InputError(f"{len(bad)} rows with a read not in {READS} or a file not in the held-out pool "
                         f"(first: {bad[0]['file']!r}, {bad[0]['read']!r})", reads_path)
    reads = {label: np.asarray([r["read"] for r in rows if labels[r["file"]] == label]) for label in ("COVID", "NonCOVID")}
    counts = Counter((source_of(item.path.name), item.label) for item in heldout)
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(BOOTSTRAPS):
        sample = {k: v[rng.integers(0, len(v), len(v))] for k, v in reads.items()}
        draws.append(ceilings(*_shares(sample), counts))
    low, high = np.percentile(np.asarray(draws), [2.5, 97.5], axis=0)
    p_c, p_n = _shares(reads)
    point = ceilings(p_c, p_n, counts)
    record = {"command": command(), "reads": str(reads_path), "source": SOURCE,
              "reads_by_label": {k: dict(Counter(v.tolist())) for k, v in reads.items()},
              "p_covid_opacity": p_c, "p_noncovid_opacity": p_n,
              "heldout_counts": {f"{s} / {lab}": n for (s, lab), n in sorted(counts.items())},
              "ceilings": {name: {"auc": v, "ci95": [lo, hi]} for name, v, lo, hi in zip(CEILINGS, point, low, high)}}
    table = [{"detector": name, "AUC [95% CI]": f"{v:.3f} [{lo:.3f}, {hi:.3f}]"}
             for name, v, lo, hi in zip(CEILINGS, point, low, high)]
    summary = "; ".join(f"{k}: " + ", ".join(f"{n} {read}" for read, n in sorted(Counter(v.tolist()).items()))
                        for k, v in reads.items())
    if model is not None:
        record["model"] = model_aucs(model, data, rows, labels)
        table += [{"detector": f"model {model}, these {v['slices']} audited slices, against their {k[3:]}",
                   "AUC [95% CI]": f"{v['auc']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"}
                  for k, v in record["model"].items() if k.startswith("vs_")]
    write_json(out, record)
    write_text(out.with_suffix(".md"), f"Written by `{command()}`\n\nBlinded reads of {sum(len(v) for v in reads.values())} "
               f"held-out {SOURCE} ({summary}).\n\n" + markdown_table(table))
    print(markdown_table(table))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("verb", choices=("sheets", "ceiling"))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--reads", type=Path, help="ceiling: the filled-in reads.csv")
    parser.add_argument("--model", help="ceiling: also score the audited slices with this pipeline ('default': the bundle)")
    parser.add_argument("--per-label", type=int, default=36, help="sheets: slices per label")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, help="sheets: a folder; ceiling: a .json file "
                        "(default results/benchmarks/pool-audit.json)")
    args = parser.parse_args()
    if args.verb == "sheets":
        write_sheets(args.data, args.out or Path("pool-audit"), args.per_label, args.seed)
    else:
        if args.reads is None:
            parser.error("ceiling needs --reads")
        ceiling(args.data, args.reads, args.out or REPO / "results" / "benchmarks" / "pool-audit.json", args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
