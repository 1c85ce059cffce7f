"""2D slices stored upside down: told by the spine (inference/orientation.py), flipped by segment and turned back.

Rates measured on the real slices (right view / flipped copy), see the report of issue 23 item 7:
COVID-SemiSeg 98 slices: 63 "none" + 35 unknown / 63 "flip" + 35 unknown, never the wrong turn;
real prone chest DICOM 2/2 both ways; upper-abdomen DICOM 20/20 both ways; lungs-only PNGs 100/100 unknown.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from ssinfnet.data import readers
from ssinfnet.data.demo_cohort import render_subject
from ssinfnet.data.intensity import to_unit_range
from ssinfnet.inference import orientation
from ssinfnet.inference.orientation import radiological_turn
from ssinfnet.inference.segment import segment
from test_segment_phantom import ThresholdPipeline

#: Flipped COVID-SemiSeg slices that must be detected: 63/98 measured, floor with margin.
SEMISEG_FLIPPED_FLOOR = 0.55


@pytest.fixture(scope="module")
def chest_hu() -> np.ndarray:
    """A generated chest slice in HU, radiological view (the demo cohort draws vertebra, sternum, ribs)."""
    volumes = render_subject(np.random.default_rng(3), size=128, n_slices=4, lesion_fraction=0.1)
    return volumes.hu[..., 2].astype(np.float32)


def test_generated_chest_right_way_is_left_and_flipped_is_detected(chest_hu):
    assert radiological_turn(chest_hu, "hu").turn == "none"
    flipped = radiological_turn(np.flipud(chest_hu), "hu")
    assert flipped.turn == "flip" and "top" in flipped.reason
    # a [0, 1] display image (what segment holds) is read the same way
    assert radiological_turn(np.flipud(to_unit_range(chest_hu, "hu"))).turn == "flip"


def test_no_anatomy_is_unknown(chest_hu):
    assert radiological_turn(np.zeros((64, 64), np.float32)).turn == "unknown"
    assert radiological_turn(np.zeros((8, 8), np.float32)).turn == "unknown"
    # the lungs alone (everything else black): two separate pieces of tissue, no body
    lungs_only = np.where(chest_hu < -500, to_unit_range(chest_hu, "hu") + 0.3, 0.0)
    assert radiological_turn(lungs_only).turn == "unknown"
    assert radiological_turn(np.flipud(lungs_only)).turn == "unknown"


def test_turns_invert():
    array = np.arange(12).reshape(3, 4)
    for turn in ("none", "flip", "unknown"):
        assert np.array_equal(orientation.turned_back(orientation.turned(array, turn), turn), array)
    assert np.array_equal(orientation.turned(array, "flip"), array[::-1])
    assert np.array_equal(orientation.turned(array, "unknown"), array)


class RecordingPipeline(ThresholdPipeline):
    """The threshold stand-in, keeping the images it was given."""

    def __init__(self):
        super().__init__()
        self.images: list[np.ndarray] = []

    def predict(self, images, batch_size=8):
        self.images.extend(images)
        return super().predict(images, batch_size)


def test_segment_flips_an_upside_down_png_and_turns_labels_back(chest_hu, tmp_path, caplog):
    upright_png, flipped_png = tmp_path / "upright.png", tmp_path / "flipped.png"
    pixels = np.round(to_unit_range(chest_hu, "hu") * 255).astype(np.uint8)
    Image.fromarray(pixels).save(upright_png)
    Image.fromarray(np.ascontiguousarray(pixels[::-1])).save(flipped_png)
    upright_model, flipped_model = RecordingPipeline(), RecordingPipeline()
    with caplog.at_level(logging.WARNING):
        upright = segment(upright_png, model=upright_model)
        assert not [r for r in caplog.records if r.name == orientation.__name__]
        flipped = segment(flipped_png, model=flipped_model)
    warnings = [r.getMessage() for r in caplog.records if r.name == orientation.__name__]
    assert len(warnings) == 1 and str(flipped_png.resolve()) in warnings[0] and "flipped" in warnings[0]
    assert "\n" not in warnings[0]
    # the network saw the radiological view both times; the outputs are in each input's own orientation
    assert np.array_equal(flipped_model.images[0], upright_model.images[0])
    assert upright.labels.any() and upright.lung.any()
    assert np.array_equal(flipped.labels, upright.labels[::-1])
    assert np.array_equal(flipped.lung, upright.lung[::-1])
    assert flipped.quantities == upright.quantities
    out = flipped.save(tmp_path / "out")
    assert np.array_equal(np.asarray(Image.open(out / "labels.png")), upright.labels[::-1])


# ----------------------------------------------------------------------------- real slices


def _turns(images) -> list[str]:
    return [radiological_turn(image).turn for image in images]


def test_semiseg_right_way_never_turned_flipped_mostly_detected(shared_data):
    images = [s.image for split in ("train", "test") for s in readers.read_semiseg(shared_data / "covid-semiseg", split)]
    assert len(images) == 98
    assert "flip" not in _turns(images)
    flipped = _turns(np.flipud(image) for image in images)
    assert "none" not in flipped
    assert flipped.count("flip") >= SEMISEG_FLIPPED_FLOOR * len(images)


@pytest.mark.parametrize("folder, count", [("chest-2slices-dicom", 2), ("abdomen-20slices-dicom", 20)])
def test_real_dicom_slices_as_lung_window_exports(shared_data, folder, count):
    # the chest patient lies prone (couch against the anterior chest): the spine still decides
    images = [s.image for s in readers.read_dicom_series(shared_data / "real-ct" / folder)]
    assert len(images) == count
    assert _turns(images) == ["none"] * count
    assert _turns(np.flipud(image) for image in images) == ["flip"] * count


def test_lungs_only_images_are_never_turned(shared_data):
    paths = sorted((shared_data / "medseg100" / "lung_only_512").glob("*.png"))
    assert len(paths) == 100
    images = [to_unit_range(np.asarray(Image.open(path).convert("L")), "8bit") for path in paths]
    assert set(_turns(images)) == {"unknown"}
    assert set(_turns(np.flipud(image) for image in images)) == {"unknown"}
