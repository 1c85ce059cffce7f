"""Write docs/segment-overlay.png, the README's picture, from a GENERATED scan (never from real data).

    PYTHONPATH=src python scripts/readme_figure.py [--out docs/segment-overlay.png]

It writes a small demo cohort (``make_demo_cohort``: NIfTI volumes in HU with known GGO / consolidation),
segments one volume with the bundled model exactly as ``ssinfnet segment`` does, and puts side by side the
overlay that segment writes for the slice with the most lesion and the generated truth on that slice
(GGO red, consolidation green).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw

import ssinfnet
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.data.intensity import to_unit_range
from ssinfnet.inference.outputs import overlay

SEED, SIZE, SLICES = 0, 256, 12


def figure(work: Path) -> Image.Image:
    cohort = make_demo_cohort(work / "cohort", n_subjects=4, seed=SEED, size=SIZE, slices_per_subject=SLICES)
    volumes = sorted((cohort / "volumes").iterdir())
    # the generated volume with the most lesion
    ct_dir = max(volumes, key=lambda v: int((np.asarray(nib.load(v / "label.nii.gz").dataobj) > 0).sum()))
    result = ssinfnet.segment(ct_dir / "ct.nii.gz")
    out = result.save(work / "seg" / ct_dir.name)
    scan = result.display
    truth = scan.to_display(np.asarray(nib.load(ct_dir / "label.nii.gz").dataobj).astype(np.uint8))
    k = int(np.argmax((truth > 0).sum(axis=(1, 2))))
    written = out / "overlays" / f"overlay_slice{k:04d}.png"  # segment's own overlay of that slice, if written
    grey = to_unit_range(scan.stack[k], scan.modality)
    predicted = Image.open(written) if written.is_file() else overlay(grey, scan.to_display(result.labels)[k])
    truth_image = overlay(grey, truth[k])
    panel = Image.new("RGB", (2 * predicted.width, predicted.height + 18), "white")
    for i, (image, title) in enumerate(((predicted, "ssinfnet segment"), (truth_image, "generated truth"))):
        panel.paste(image, (i * predicted.width, 18))
        ImageDraw.Draw(panel).text((i * predicted.width + 4, 3), title, fill="black")
    return panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/segment-overlay.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figure(Path(tmp)).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
