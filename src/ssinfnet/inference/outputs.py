"""What one segmented scan gives back, and the viewer-ready files written for it.

Files in a scan's output folder (written into a temporary folder and renamed, so a failed or
interrupted run leaves nothing half-written):

- volumes (NIfTI or DICOM input): ``labels.nii.gz`` (uint8, 0 background / 1 GGO / 2 consolidation)
  and ``lung.nii.gz`` (uint8 0/1) in the input's exact geometry: same shape, affine and header as the
  input NIfTI; for DICOM the affine built from the series geometry. With probabilities:
  ``probability_{infection,ggo,consolidation}.nii.gz`` stored as uint8 with ``scl_slope`` 1/255, so a
  viewer shows 0..1 while the file stays small.
- DICOM series and arrays: also ``image.nii.gz``, the scan itself (int16 HU) in that geometry, so a
  viewer or ``ssinfnet phenotypes`` can open scan and labels together.
- 2D images: ``labels.png`` (values 0/1/2), ``lung.png`` (0/255) and ``probability_*.png`` (0..255),
  all at the input's size.
- ``labels.ctbl`` (3D Slicer colour table) and ``labels_itksnap.txt`` (ITK-SNAP label description):
  the colours of ``core.labels.LABEL_COLOURS`` (GGO red, consolidation green).
- ``overlays/overlay_sliceNNNN.png``: a few representative slices (largest lesion area, spread
  through the scan; NNNN = index along the input's slice axis) in the radiological view, the labels'
  colours over the lung-windowed image (``core.labels.overlay_rgb``, as in the evaluation gallery), with
  the legend in a strip below the slice.
- ``quantities.json`` (scan, source, units, lung-mask method and the quantities) and
  ``quantities.csv`` (the same quantities as one row).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw

from ssinfnet import fileio
from ssinfnet.core.labels import LABEL_COLOURS, legend_entries, overlay_rgb
from ssinfnet.data.intensity import to_unit_range
from ssinfnet.errors import InputError
from ssinfnet.inference import lungmask

PROBABILITY_NAMES = ("infection", "ggo", "consolidation")
OVERLAY_SLICES = 4
#: Height in pixels of the legend strip below each overlay.
LEGEND_HEIGHT = 16


@dataclass
class SegmentationResult:
    """Labels, lung mask and quantities of one scan, in the input's own geometry.

    ``labels`` (uint8 0/1/2) and ``lung`` (bool) have the input's array shape: the NIfTI data shape,
    (rows, cols, slices) for DICOM (slices sorted along the slice normal, matching ``affine``), or
    (rows, cols) for a 2D image. ``probabilities`` (when asked for) maps "infection" (stage 1), "ggo" and
    "consolidation" to uint8 arrays of the same shape holding ``round(255 * p)``: use
    :meth:`probability` for float values. ``affine`` is the RAS voxel-to-world matrix (None for 2D).
    """

    name: str
    source: str
    labels: np.ndarray
    lung: np.ndarray
    quantities: dict[str, Any]
    affine: np.ndarray | None = None
    probabilities: dict[str, np.ndarray] | None = None
    display: Any = field(default=None, repr=False)
    """The :class:`ssinfnet.inference.segment.Scan` the result came from (for overlays)."""
    nifti_header: Any = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)
    """What else describes the input, e.g. the DICOM series UID and the voxel size."""
    save_image: bool = False
    """Also write the scan itself as ``image.nii.gz`` (for inputs that are no NIfTI file)."""

    def probability(self, name: str) -> np.ndarray:
        """Float32 probability map ``name`` in [0, 1] (needs ``probabilities=True`` at segmentation)."""
        if not self.probabilities:
            raise ValueError("no probabilities kept: segment with probabilities=True")
        return self.probabilities[name].astype(np.float32) / 255.0

    def save(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        """Write every output file into ``out_dir`` (see the module doc); refuses an existing folder
        unless ``overwrite``."""
        out_dir = Path(out_dir)
        if out_dir.exists() and not overwrite:
            raise InputError("output folder exists; pass --overwrite (overwrite=True) to replace it", out_dir)
        try:
            with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
                self._write(tmp)
        except FileExistsError:
            raise InputError("output folder appeared while writing; pass --overwrite to replace it", out_dir) from None
        return out_dir

    def _write(self, folder: Path) -> None:
        if self.affine is None:
            _write_png(folder / "labels.png", self.labels)
            _write_png(folder / "lung.png", self.lung.astype(np.uint8) * 255)
            for name, prob in (self.probabilities or {}).items():
                _write_png(folder / f"probability_{name}.png", prob)
        else:
            self._write_nifti(folder / "labels.nii.gz", self.labels)
            self._write_nifti(folder / "lung.nii.gz", self.lung.astype(np.uint8))
            for name, prob in (self.probabilities or {}).items():
                self._write_nifti(folder / f"probability_{name}.nii.gz", prob, slope=1.0 / 255.0)
            if self.save_image and self.display is not None:
                hu = self.display.to_input(self.display.stack)
                nib.save(nib.Nifti1Image(np.round(hu).astype(np.int16), self.affine), folder / "image.nii.gz")
        (folder / "labels.ctbl").write_text(slicer_colour_table())
        (folder / "labels_itksnap.txt").write_text(itksnap_label_description())
        if self.display is not None:
            overlays = folder / "overlays"
            overlays.mkdir()
            for index, image in representative_overlays(self.display.stack, self.display.modality,
                                                         self.display.to_display(self.labels)):
                image.save(overlays / f"overlay_slice{index:04d}.png")
        fileio.write_json(folder / "quantities.json", {
            "scan": self.name,
            "source": self.source,
            **self.details,
            "lung_mask": lungmask.METHOD,
            "quantities": self.quantities,
        })
        fileio.write_csv(folder / "quantities.csv", [{"scan": self.name, "source": self.source, **self.quantities}])

    def _write_nifti(self, path: Path, data: np.ndarray, slope: float = 1.0) -> None:
        data = np.asarray(data, dtype=np.uint8)
        if isinstance(self.nifti_header, nib.Nifti1Header):
            # The input's own header (affine taken from it) keeps its qform and sform, codes included,
            # so viewers place the labels exactly on the scan.
            image = nib.Nifti1Image(data, None, header=self.nifti_header.copy())
            image.header["cal_min"] = image.header["cal_max"] = 0  # the CT's display range
        else:
            image = nib.Nifti1Image(data, self.affine)
        image.set_data_dtype(np.uint8)
        image.header.set_slope_inter(slope, 0.0)
        nib.save(image, path)


def write_summary(out: Path) -> None:
    """``out/summary.csv``: one row per scan folder under ``out`` (its ``quantities.csv``, ``scan`` =
    the folder's name), sorted by name, whichever run wrote it; none without a scan folder."""
    rows = []
    folders = sorted(p for p in out.iterdir() if p.is_dir() and not fileio.is_temporary(p)) if out.is_dir() else []
    for folder in folders:
        if (folder / "quantities.csv").is_file():
            with open(folder / "quantities.csv", newline="", encoding="utf-8") as fh:
                rows += [{**row, "scan": folder.name} for row in csv.DictReader(fh)]
    if rows:
        fileio.write_csv(out / "summary.csv", rows)


def representative_overlays(stack: np.ndarray, modality: str, labels: np.ndarray,
                            count: int = OVERLAY_SLICES) -> list[tuple[int, Image.Image]]:
    """``count`` slices of a display-layout stack, chosen as the largest-lesion slices of ``count``
    equal chunks of the scan (the middle slice when nothing was found), as RGB overlays."""
    area = (labels > 0).sum(axis=(1, 2))
    if not area.any():
        chosen = [len(area) // 2]
    else:
        chunks = np.array_split(np.arange(len(area)), min(count, len(area)))
        chosen = sorted({int(chunk[np.argmax(area[chunk])]) for chunk in chunks if area[chunk].any()})
    return [(k, with_legend(overlay(to_unit_range(stack[k], modality), labels[k]))) for k in chosen]


def overlay(image: np.ndarray, labels: np.ndarray) -> Image.Image:
    """RGB image: grey ``image`` in [0, 1] with each label's colour blended in (``core.labels.overlay_rgb``)."""
    return Image.fromarray(overlay_rgb(image, labels), mode="RGB")


def with_legend(image: Image.Image, task: str = "multi") -> Image.Image:
    """``image`` over a black strip of LEGEND_HEIGHT pixels naming each label in its colour
    (``core.labels.legend_entries``: the evaluation gallery's legend)."""
    out = Image.new("RGB", (image.width, image.height + LEGEND_HEIGHT))
    out.paste(image, (0, 0))
    draw, x, y = ImageDraw.Draw(out), 4, image.height + 3
    for _, name, rgb, _ in legend_entries(task):
        draw.rectangle((x, y, x + 9, y + 9), fill=rgb)
        draw.text((x + 13, y - 1), name, fill=(255, 255, 255))
        x += 13 + int(draw.textlength(name)) + 12
    return out


def slicer_colour_table() -> str:
    """3D Slicer colour table (``.ctbl``): ``index name R G B A`` per label."""
    lines = ["# ssinfnet labels: 3D Slicer colour table", "0 background 0 0 0 0"]
    lines += [f"{value} {name} {r} {g} {b} 255" for value, (name, (r, g, b), _) in LABEL_COLOURS.items()]
    return "\n".join(lines) + "\n"


def itksnap_label_description() -> str:
    """ITK-SNAP label description file (Segmentation > Import Label Descriptions)."""
    lines = [
        "# ITK-SnAP Label Description File (ssinfnet labels)",
        "# Columns = Index, Red, Green, Blue, Visibility, Label visibility, Mesh visibility, Label",
        '    0     0    0    0        0  0  0    "Clear Label"',
    ]
    lines += [f'{value:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{name}"'
              for value, (name, (r, g, b), _) in LABEL_COLOURS.items()]
    return "\n".join(lines) + "\n"


def _write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="L").save(path)

