"""Readers on small generated files: COVID-SemiSeg layout, paired folders, unlabeled folders."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ssinfnet.data.readers import (
    detect_layout,
    iter_unlabeled,
    read_dataset,
    read_paired_folder,
    read_semiseg,
)


def _ct_like(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, cols), dtype=np.uint8)


def _labels(rows: int, cols: int) -> np.ndarray:
    mask = np.zeros((rows, cols), np.uint8)
    mask[2:8, 3:9] = 1
    mask[10:14, 10:16] = 2
    return mask


def _palette_png(path, labels: np.ndarray) -> None:
    """GT files of COVID-SemiSeg are palette PNGs whose indices are the labels."""
    image = Image.fromarray(labels, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(path)


def make_semiseg(root, sizes=((20, 24), (18, 30), (22, 22))):
    for split, multi, single in (("train", "TrainingSet/MultiClassInfection-Train",
                                  "TrainingSet/LungInfection-Train/Doctor-label"),
                                 ("test", "TestingSet/MultiClassInfection-Test", "TestingSet/LungInfection-Test")):
        for sub in (multi, single):
            (root / sub / "Imgs").mkdir(parents=True)
            (root / sub / "GT").mkdir(parents=True)
        for i, (r, c) in enumerate(sizes):
            image = Image.fromarray(_ct_like(r, c, i))
            labels = _labels(r, c)
            for sub in (multi, single):
                image.save(root / sub / "Imgs" / f"{i * 5}.jpg", quality=95)
            _palette_png(root / multi / "GT" / f"{i * 5}.png", labels)
            Image.fromarray(((labels > 0) * 255).astype(np.uint8)).save(root / single / "GT" / f"{i * 5}.png")
    return root


def test_semiseg_multi_and_single_views(tmp_path):
    root = make_semiseg(tmp_path / "semiseg")
    assert detect_layout(root) == "semiseg"
    train = read_semiseg(root, "train", "multi", orientation="array")
    assert [s.meta.id for s in train] == ["0", "5", "10"]  # natural order, not 0, 10, 5
    first = train[0]
    assert first.image.dtype == np.float32 and first.image.shape == (20, 24)
    assert 0.0 <= first.image.min() and first.image.max() <= 1.0
    assert first.mask.dtype == np.int64
    np.testing.assert_array_equal(first.mask, _labels(20, 24))
    assert first.meta.original_size == (20, 24) and first.meta.group == first.meta.id
    assert first.meta.modality == "8bit" and first.meta.geometry == {"kind": "image2d"}
    single = read_semiseg(root, "test", "single", orientation="array")
    assert len(single) == 3
    np.testing.assert_array_equal(single[1].mask, (_labels(18, 30) > 0).astype(np.int64))
    assert read_dataset(root, split="test")[2].mask.max() == 2


def test_semiseg_default_is_the_radiological_view(tmp_path):
    root = make_semiseg(tmp_path / "semiseg")
    stored = read_semiseg(root, "train", "multi", orientation="array")[0]
    turned = read_semiseg(root, "train", "multi")[0]
    # Turned clockwise: the stored left column (anterior in COVID-SemiSeg) becomes the top row.
    np.testing.assert_array_equal(turned.mask, np.rot90(stored.mask, -1))
    np.testing.assert_array_equal(turned.image[0], stored.image[::-1, 0])
    assert turned.meta.original_size == (24, 20)
    assert turned.meta.geometry == {"kind": "image2d", "rot90": -1, "stored_size": [20, 24]}


def test_eight_bit_image_scaled_by_255(tmp_path):
    root = make_semiseg(tmp_path / "semiseg")
    sample = read_semiseg(root, orientation="array")[0]
    stored = np.asarray(Image.open(sample.meta.source), dtype=np.float32)
    np.testing.assert_allclose(sample.image, stored / 255.0, atol=1e-6)


def test_paired_folder_mixes_png_tiff_and_nifti_slices(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(_ct_like(16, 16, 0)).save(tmp_path / "images" / "a.png")
    Image.fromarray(_labels(16, 16)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(_ct_like(16, 20, 1)).save(tmp_path / "images" / "b.tif")
    Image.fromarray(_labels(16, 20) * 127).save(tmp_path / "masks" / "b.png")  # 0/127/254: refused below
    hu = np.full((16, 16, 1), -1000.0, np.float32)
    hu[4:8, 4:8, 0] = -500.0
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "images" / "c.nii.gz")
    label = np.zeros((16, 16, 1), np.uint8)
    label[4:8, 4:8, 0] = 1
    nib.save(nib.Nifti1Image(label, np.eye(4)), tmp_path / "masks" / "c.nii.gz")
    Image.fromarray(_labels(16, 20)).save(tmp_path / "masks" / "b.png")
    samples = read_paired_folder(tmp_path)
    assert detect_layout(tmp_path) == "paired"
    assert [s.meta.id for s in samples] == ["a", "b", "c#0"]
    nifti = samples[2]
    assert nifti.meta.modality == "hu" and nifti.hu is not None
    assert nifti.mask.sum() == 16 and nifti.image[nifti.mask == 1].mean() > nifti.image[nifti.mask == 0].mean()


def test_rgba_and_16bit_images_are_accepted_and_converted(tmp_path):
    root = tmp_path / "unlabeled"
    (root / "sub").mkdir(parents=True)
    grey = _ct_like(12, 14, 3)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    Image.fromarray(rgba, mode="RGBA").save(root / "rgba.png")
    wide = np.linspace(0, 4000, 40 * 50).reshape(40, 50).astype(np.uint16)
    wide[0, 0] = 65535  # one hot pixel must not squash the rest (robust percentiles)
    Image.fromarray(wide).save(root / "sub" / "wide.png")
    samples = {s.meta.id: s for s in iter_unlabeled(root)}
    assert set(samples) == {"rgba", "sub/wide"}
    np.testing.assert_allclose(samples["rgba"].image, grey / 255.0, atol=1e-3)  # luminance of grey = grey
    assert samples["rgba"].meta.modality == "rgba"
    sixteen = samples["sub/wide"]
    assert sixteen.meta.modality == "16bit" and sixteen.image.dtype == np.float32
    assert sixteen.image.max() == 1.0 and sixteen.image.min() == 0.0
    assert 0.4 < float(np.median(sixteen.image)) < 0.6


def test_unlabeled_recursive_mixed_formats_with_manifest(tmp_path):
    root = tmp_path / "pool"
    (root / "COVID").mkdir(parents=True)
    (root / "Other").mkdir()
    Image.fromarray(_ct_like(10, 12, 0)).convert("RGB").save(root / "COVID" / "x.jpg")
    Image.fromarray(_ct_like(9, 9, 1)).save(root / "Other" / "x.bmp")  # same stem, other folder
    nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), root / "Other" / "y.nii")
    (root / "notes.txt").write_text("not an image: ignored")
    with open(root / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([["file", "covid_label"], ["COVID/x.jpg", "COVID"], ["Other/x.bmp", "NonCOVID"]])
    samples = list(iter_unlabeled(root, root / "manifest.csv"))
    assert [s.meta.id for s in samples] == ["COVID/x", "Other/x", "Other/y#0"]
    assert [s.meta.label for s in samples] == ["COVID", "NonCOVID", None]
    assert all(s.mask is None and s.image.dtype == np.float32 for s in samples)
    assert samples[0].meta.modality == "rgb" and samples[2].meta.modality == "hu"
    assert len(read_dataset(root)) == 3


def test_unlabeled_iteration_is_lazy(tmp_path):
    """The pool is decoded one file at a time: a broken last file is only hit when reached."""
    for i in range(3):
        Image.fromarray(_ct_like(8, 8, i)).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"broken")
    iterator = iter_unlabeled(tmp_path)
    assert next(iterator).meta.id == "0"


@pytest.mark.parametrize("layout, make", [
    ("image", lambda p: Image.fromarray(_ct_like(8, 8, 0)).save(p / "one.png") or p / "one.png"),
    ("nifti", lambda p: nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), p / "v.nii.gz")
     or p / "v.nii.gz"),
])
def test_detect_single_files(tmp_path, layout, make):
    path = make(tmp_path)
    assert detect_layout(path) == layout
    assert len(read_dataset(path)) >= 1


def test_unlabeled_folders_skip_what_a_killed_writer_left(tmp_path):
    """Files inside an atomic writer's temporary folder (``.NAME.xxxx.tmp/``) are not slices."""
    from ssinfnet.data.readers import list_unlabeled_files

    pool = tmp_path / "pool"
    for folder in (pool / "scan", pool / ".scan.host-pid1.abc.tmp" / "overlays"):
        folder.mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(folder / "overlay_slice0001.png")
    assert list_unlabeled_files(pool) == [pool / "scan" / "overlay_slice0001.png"]
