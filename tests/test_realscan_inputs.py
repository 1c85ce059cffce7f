"""What the networks see on real scans: the canonical contrast, export differences, the held-out pool,
negative slices and their weight in the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ssinfnet.data.augment import ExportAugmentation, export_transform
from ssinfnet.data.dataset import NegativeDataset, SegmentationDataset
from ssinfnet.data.intensity import (
    CANONICAL_ANCHORS, CANONICAL_CONTRAST, EQUALIZE_CLIP, EQUALIZED_CONTRAST, UNIT_CONTRAST, Anchors, after_resize,
    before_resize, clahe, estimate_anchors, scan_anchors, to_canonical,
)
from ssinfnet.data.pool import is_heldout, source_group, split_pool
from ssinfnet.data.sample import Sample, SampleMeta
from ssinfnet.training.inputs import negative_files
from ssinfnet.training.losses import weighted_loss


def _chest(size=96, lung=0.2, tissue=0.8, air=None):
    """A crop through a chest (lungs reaching no border) or, with ``air``, a full field of view."""
    image = np.full((size, size), tissue, dtype=np.float32)
    image[20:76, 12:44] = lung
    image[20:76, 52:84] = lung
    image[40:44, 60:64] = tissue  # a vessel
    if air is not None:
        framed = np.full((size * 2, size * 2), air, dtype=np.float32)
        framed[size // 2 : size // 2 + size, size // 2 : size // 2 + size] = image
        image = framed
    return image


def test_anchors_are_darkest_lung_and_median_tissue():
    anchors = estimate_anchors(_chest())
    assert anchors.dark == pytest.approx(0.2, abs=1e-6) and anchors.bright == pytest.approx(0.8, abs=1e-6)


def test_canonical_map_undoes_linear_exports_and_ignores_outside_air():
    reference = to_canonical(_chest())
    assert reference[30, 20] == pytest.approx(CANONICAL_ANCHORS.dark, abs=1e-6)
    assert reference[5, 5] == pytest.approx(CANONICAL_ANCHORS.bright, abs=1e-6)
    for gain, offset in ((0.5, 0.1), (1.2, -0.1)):  # another window, min-max scaling
        np.testing.assert_allclose(to_canonical(_chest() * gain + offset), reference, atol=1e-5)
    framed = to_canonical(_chest(air=0.0))  # air around the body does not move the anchors
    np.testing.assert_allclose(framed[48:144, 48:144], reference, atol=1e-5)


def test_no_anchors_leaves_the_image_as_it_is():
    flat = np.full((64, 64), 0.3, dtype=np.float32)
    assert estimate_anchors(flat) is None
    np.testing.assert_array_equal(to_canonical(flat), flat)


def test_given_anchors_are_used_and_scan_anchors_are_medians():
    image = _chest()
    out = to_canonical(image, Anchors(0.0, 1.0))
    gain = CANONICAL_ANCHORS.bright - CANONICAL_ANCHORS.dark
    assert out[30, 20] == pytest.approx(0.2 * gain + CANONICAL_ANCHORS.dark, abs=1e-6)
    anchors = scan_anchors([_chest(lung=0.1), _chest(lung=0.2), _chest(lung=0.3), np.zeros((64, 64))])
    assert anchors.dark == pytest.approx(0.2, abs=1e-6)


def _textured_chest(size=224, seed=0):
    """(image, lungs): a chest crop with textured lungs, a ground-glass patch and noise (equalisation
    needs more than a few grey levels to act on)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    lungs = (((yy - 0.5) / 0.32) ** 2 + ((xx - 0.3) / 0.17) ** 2 < 1) | (((yy - 0.5) / 0.32) ** 2 + ((xx - 0.7) / 0.17) ** 2 < 1)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 4)
    image = np.full((size, size), 0.8)
    image[lungs] = 0.22 + 0.04 * (texture / texture.std())[lungs]
    image[lungs & ((yy - 0.4) ** 2 + (xx - 0.3) ** 2 < 0.08 ** 2)] += 0.25  # ground glass
    image += 0.02 * ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 1)
    return np.clip(image, 0, 1).astype(np.float32), lungs


def test_equalized_contrast_hardly_moves_under_an_exports_own_equalisation():
    """An export's CLAHE (clip 4 or 8) moves the lungs' equalised input less than half as much as the
    canonical one (which cannot undo it); the other contrasts are untouched by the option."""
    image, lungs = _textured_chest()
    np.testing.assert_array_equal(before_resize(image, UNIT_CONTRAST), image)
    np.testing.assert_array_equal(after_resize(image, CANONICAL_CONTRAST), image)
    np.testing.assert_allclose(after_resize(image, EQUALIZED_CONTRAST), clahe(image, EQUALIZE_CLIP))

    def change(contrast, clip):
        def view(x):
            return after_resize(before_resize(x, contrast), contrast)
        return float(np.abs(view(clahe(image, clip)) - view(image))[lungs].mean())

    for clip in (4.0, 8.0):
        assert change(EQUALIZED_CONTRAST, clip) < 0.5 * change(CANONICAL_CONTRAST, clip)
    with pytest.raises(ValueError, match="unknown input contrast 'hu'"):
        after_resize(image, "hu")


def test_dataset_items_get_the_equalized_contrast_at_their_size():
    image, _ = _textured_chest(96)
    sample = Sample(image, np.zeros((96, 96), np.int64), SampleMeta(source="x", id="a", group="a",
                                                                   original_size=(96, 96)))
    item = SegmentationDataset([sample], size=64, contrast=EQUALIZED_CONTRAST)[0]["image"][0].numpy()
    resized = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=(64, 64), mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(item, clahe(to_canonical(resized), EQUALIZE_CLIP), atol=1e-6)


@pytest.mark.parametrize("name", ExportAugmentation.EXPORTS)
def test_every_export_transform_keeps_range_and_labels(name):
    image, mask = _chest(), np.zeros((96, 96), dtype=np.int64)
    mask[30:40, 20:30] = 2
    out, labels = export_transform(name, image, mask, np.random.default_rng(0))
    assert out.min() >= 0 and out.max() <= 1 and out.shape == labels.shape
    assert set(np.unique(labels)) == {0, 2} and (labels == 2).sum() == 100  # geometry moves, never rescales labels
    if name != "minmax":  # the chest is already min-max scaled
        assert not np.allclose(out[: image.shape[0], : image.shape[1]], image)


def test_export_augmentation_is_seeded():
    image, mask = _chest(), np.zeros((96, 96), dtype=np.int64)
    first = [ExportAugmentation(3)(image, mask)[0] for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    augment = ExportAugmentation(3, probability=1.0)
    assert not np.array_equal(augment(image, mask)[0], augment(image, mask)[0])


def test_source_groups_keep_near_duplicates_together():
    assert source_group("Covid (101).jpg") == source_group("Covid (110).jpg") != source_group("Covid (130).jpg")
    assert source_group("2020.03.20.20037325-p23-124.png") == source_group("2020.03.20.20037325-p6-52%4.png")
    assert source_group("nor_16_img_6.jpg") == source_group("nor_16_img_19.jpg") != source_group("nor_17_img_6.jpg")
    assert is_heldout("img1.jpg", 1.0) and not is_heldout("img1.jpg", 0.0)


def _pool(tmp_path, n=60):
    (tmp_path / "COVID").mkdir()
    (tmp_path / "NonCOVID").mkdir()
    rows = ["file,covid_label"]
    for k in range(n):
        label = "COVID" if k % 2 else "NonCOVID"
        name = f"{label}/Covid ({k * 13}).png"
        Image.fromarray(np.full((16, 16), k, dtype=np.uint8)).save(tmp_path / name)
        rows.append(f"{name},{label}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_split_is_by_group_and_negatives_come_from_the_training_part(tmp_path):
    root = _pool(tmp_path)
    train, heldout = split_pool(root, 0.5)
    assert train and heldout and len(train) + len(heldout) == 60
    assert not {source_group(f.path.name) for f in train} & {source_group(f.path.name) for f in heldout}
    negatives = negative_files([root], 0.5)
    assert set(negatives) == {f.path for f in train if f.label == "NonCOVID"}
    assert split_pool(root, 0.0)[1] == []


def test_negative_items_are_background_with_their_weight(tmp_path):
    root = _pool(tmp_path)
    data = NegativeDataset(negative_files([root]), size=32, weight=0.25, contrast=CANONICAL_CONTRAST)
    item = data[0]
    assert item["image"].shape == (1, 32, 32) and item["mask"].sum() == 0 and item["weight"] == 0.25
    labeled = SegmentationDataset([Sample(np.zeros((16, 16), np.float32), np.ones((16, 16), np.int64),
                                          SampleMeta(source="x", id="a", group="a", original_size=(16, 16)))], size=32)
    assert labeled[0]["weight"] == 1.0


def test_weighted_loss_is_the_per_item_weighted_mean():
    def per_item(outputs, mask):  # a loss whose batch mean is easy to check
        return outputs["out"].mean(dim=(1, 2, 3)).mean() + 0 * mask.sum()

    outputs = {"out": torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1)}
    mask = torch.zeros(4, 1, 1, dtype=torch.int64)
    weight = torch.tensor([1.0, 1.0, 0.5, 0.5])
    expected = (0 * 1 + 1 * 1 + 2 * 0.5 + 3 * 0.5) / 4
    assert float(weighted_loss(outputs, mask, weight, per_item)) == pytest.approx(expected)
    assert float(weighted_loss(outputs, mask, None, per_item)) == pytest.approx(1.5)


def test_segment_takes_a_2d_exports_anchors_before_the_lung_crop():
    """A full-field 2D export: body in grey outside air, black padding beyond the round field of view.
    The lung crop keeps a corner of the padding; anchors taken from the crop would call that black the
    darkest lung. They come from the whole slice instead."""
    from ssinfnet.inference.lungmask import lung_mask
    from ssinfnet.inference.segment import _anchors, lung_box, scan_from_array

    yy, xx = np.mgrid[:200, :200]
    image = np.zeros((200, 200), dtype=np.float32)  # padding
    image[(yy - 100) ** 2 + (xx - 100) ** 2 < 98 ** 2] = 0.3  # outside air inside the field of view
    body = ((yy - 100) / 80) ** 2 + ((xx - 100) / 95) ** 2 < 1
    image[body] = 0.8
    for centre in (60, 140):
        image[((yy - 100) / 55) ** 2 + ((xx - centre) / 30) ** 2 < 1] = 0.4  # lungs
    scan = scan_from_array(np.round(image * 255).astype(np.uint8))
    unit = scan.unit_slice(0)
    lung = lung_mask(unit[None], "display")
    assert lung.any()
    anchors = _anchors(scan, lung)
    assert anchors.dark == pytest.approx(0.4, abs=0.01) and anchors.bright == pytest.approx(0.8, abs=0.01)
    crop = unit[lung_box(lung)[1:]]
    assert estimate_anchors(crop).dark < 0.35  # what the crop alone would have said
