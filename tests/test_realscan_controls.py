"""The bundled model on the real DICOM negative controls (issue 12): a healthy chest gets (almost) no
lesion, an upper abdomen none, and nothing lies outside the lung mask or in gas."""

from __future__ import annotations

import numpy as np
import pytest

from ssinfnet.inference.predictor import DEFAULT_WEIGHTS

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def bundled():
    if not (DEFAULT_WEIGHTS / "pipeline.json").is_file():
        pytest.skip(f"no bundled model in {DEFAULT_WEIGHTS}")
    from ssinfnet.inference.segment import resolve_pipeline

    return resolve_pipeline(None)


def _segment(folder, pipeline):
    from ssinfnet.inference.segment import read_scan, segment

    scan = read_scan(folder)
    return scan, segment(scan, model=pipeline)


@pytest.mark.xfail(strict=True, reason="issue 12, not met yet: the bundled model calls about 9% of this healthy "
                   "chest lesion (the dependent posterior lung and a few vessels; results/benchmarks/specificity.md)")
def test_healthy_chest_has_at_most_two_percent_lesion(shared_data, bundled):
    _, result = _segment(shared_data / "real-ct" / "chest-2slices-dicom", bundled)
    assert result.quantities["lesion_percent_of_lung"] <= 2.0
    assert not ((result.labels > 0) & ~result.lung.astype(bool)).any()


def test_upper_abdomen_has_no_lesion_and_no_gas_in_the_lung(shared_data, bundled):
    scan, result = _segment(shared_data / "real-ct" / "abdomen-20slices-dicom", bundled)
    q = result.quantities
    assert q["ggo_ml"] + q["consolidation_ml"] <= 1.0
    lung = result.lung.astype(bool)
    assert not ((result.labels > 0) & ~lung).any()
    hu = scan.to_input(np.asarray(scan.stack)) if scan.plane is not None else scan.stack
    gas_ml = np.count_nonzero(lung & (hu < -950)) * scan.element_size / 1000
    assert gas_ml < 1.0
