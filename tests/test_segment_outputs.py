"""Viewer files and overlays of a segmentation result, and all-or-nothing saving."""

from __future__ import annotations

import numpy as np
import pytest

from ssinfnet.errors import InputError
from ssinfnet.inference import outputs
from ssinfnet.inference.outputs import (
    SegmentationResult,
    itksnap_label_description,
    overlay,
    representative_overlays,
    slicer_colour_table,
)


def test_colour_tables_name_each_label_with_its_colour():
    rows = [line.split() for line in slicer_colour_table().splitlines() if not line.startswith("#")]
    assert rows == [["0", "background", "0", "0", "0", "0"], ["1", "GGO", "255", "0", "0", "255"],
                    ["2", "consolidation", "0", "255", "0", "255"]]
    itk = [line.split() for line in itksnap_label_description().splitlines() if not line.startswith("#")]
    assert [row[:4] for row in itk] == [["0", "0", "0", "0"], ["1", "255", "0", "0"], ["2", "0", "255", "0"]]
    assert itk[1][-1] == '"GGO"' and itk[2][-1] == '"consolidation"'


def test_overlay_tints_ggo_red_and_consolidation_green():
    labels = np.zeros((4, 4), dtype=np.uint8)
    labels[0, 0], labels[1, 1] = 1, 2
    rgb = np.asarray(overlay(np.full((4, 4), 0.5, dtype=np.float32), labels)).astype(int)
    assert rgb[0, 0, 0] > rgb[0, 0, 1] == rgb[0, 0, 2]
    assert rgb[1, 1, 1] > rgb[1, 1, 0] == rgb[1, 1, 2]
    assert rgb[2, 2, 0] == rgb[2, 2, 1] == rgb[2, 2, 2] == 128


def test_representative_slices_are_the_largest_lesions_spread_through_the_scan():
    labels = np.zeros((8, 6, 6), dtype=np.uint8)
    for k, area in {0: 2, 1: 5, 4: 1, 5: 3, 7: 4}.items():
        labels[k].flat[:area] = 1
    chosen = [k for k, _ in representative_overlays(np.zeros((8, 6, 6)), "hu", labels, count=4)]
    assert chosen == [1, 5, 7]  # chunks 0-1, 2-3 (no lesion), 4-5, 6-7
    empty = representative_overlays(np.zeros((8, 6, 6)), "hu", np.zeros_like(labels))
    assert [k for k, _ in empty] == [4]


def _result():
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[2:4, 2:4] = 1
    return SegmentationResult(name="s", source="s.png", labels=labels, lung=labels > 0,
                              quantities={"ggo_pixels": 4})


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.fileio, "write_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        _result().save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_existing_folder_unless_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="exists"):
        _result().save(tmp_path / "out")
    _result().save(tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "labels.png").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
