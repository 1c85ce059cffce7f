"""A generated chest phantom in world coordinates and an HU-threshold stand-in for the two-stage model.

Other ``test_segment_*`` files and ``test_lungmask.py`` import these helpers. The phantom is defined
in RAS millimetres, so any affine samples the same anatomy: the patient's left lung (x < 0) holds a
GGO blob, the right lung a consolidation blob on its lateral edge. The stand-in pipeline labels by
intensity only, so tests built on it check geometry and quantification, not model skill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssinfnet.data.intensity import to_unit_range
from ssinfnet.inference.lungmask import lung_mask

AIR, LUNG, GGO, CONSOLIDATION, BODY = -1000.0, -850.0, -500.0, 0.0, 200.0
LEFT_LUNG_X, RIGHT_LUNG_X = -9.0, 9.0  # RAS: x grows toward the patient's right


def chest_hu(xyz: np.ndarray) -> np.ndarray:
    """HU at RAS points ``xyz`` (..., 3) in mm."""
    x, y, z = np.moveaxis(xyz, -1, 0)
    hu = np.full(x.shape, AIR, dtype=np.float32)
    body = (x / 24) ** 2 + (y / 17) ** 2 <= 1
    hu[body] = BODY
    for centre in (LEFT_LUNG_X, RIGHT_LUNG_X):
        hu[((x - centre) / 7) ** 2 + (y / 11) ** 2 + (z / 20) ** 2 <= 1] = LUNG
    hu[(x - LEFT_LUNG_X) ** 2 + y ** 2 + (z - 2) ** 2 <= 4.0 ** 2] = GGO
    # On the lateral edge of the right lung: partly against the body wall, so that the lung mask
    # only holds it through include_lesions.
    hu[body & ((x - RIGHT_LUNG_X - 6) ** 2 + (y - 1) ** 2 + (z + 4) ** 2 <= 3.5 ** 2)] = CONSOLIDATION
    return hu


def chest_on_grid(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The phantom sampled at the voxel centres of a grid (shape, RAS affine), as int16 HU."""
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(float)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    return chest_hu(xyz).astype(np.int16)


def centred_affine(columns: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """RAS affine with voxel axes ``columns`` (3x3) whose grid centre is the world origin."""
    affine = np.eye(4)
    affine[:3, :3] = columns
    affine[:3, 3] = -columns @ ((np.array(shape) - 1) / 2)
    return affine


def expected_quantities(hu: np.ndarray, voxel_mm3: float) -> dict[str, float]:
    """What a correct run reports for a phantom grid (lung = aerated lung + both lesions)."""
    ggo, consolidation = (hu == GGO).sum(), (hu == CONSOLIDATION).sum()
    lung = np.isin(hu, (LUNG, GGO, CONSOLIDATION)).sum()
    return {"ggo_ml": ggo * voxel_mm3 / 1000, "consolidation_ml": consolidation * voxel_mm3 / 1000,
            "lung_ml": lung * voxel_mm3 / 1000, "lesion_percent_of_lung": 100 * (ggo + consolidation) / lung}


@dataclass
class FakePrediction:
    infection_prob: np.ndarray
    class_probs: np.ndarray
    labels: np.ndarray


class ThresholdPipeline:
    """Labels lung-window intensities: GGO HU -> 1, consolidation HU -> 2 (body HU clips to 1.0)."""

    def __init__(self):
        self.batches: list[int] = []

    def predict(self, images, batch_size=8):
        self.batches.append(len(images))
        out = []
        for image in images:
            labels = np.zeros(image.shape, dtype=np.uint8)
            labels[(image > 0.45) & (image < 0.75)] = 1
            labels[(image > 0.8) & (image < 0.97)] = 2
            class_probs = np.stack([labels == c for c in range(3)]).astype(np.float32)
            out.append(FakePrediction(1 - class_probs[0], class_probs, labels))
        return out


def test_threshold_pipeline_labels_phantom_values():
    hu = np.array([[AIR, LUNG, GGO, CONSOLIDATION, BODY]], dtype=np.float32)
    (prediction,) = ThresholdPipeline().predict([to_unit_range(hu, "hu")])
    assert prediction.labels.tolist() == [[0, 0, 1, 2, 0]]


def test_phantom_lungs_are_found_without_outside_air():
    affine = centred_affine(np.diag([-0.8, -0.8, 2.5]), (64, 64, 20))
    hu = chest_on_grid(affine, (64, 64, 20))
    stack = np.moveaxis(hu, 2, 0)
    lung = lung_mask(stack.astype(np.float32))
    aerated = stack == LUNG
    assert lung[aerated].all()
    assert not lung[stack == AIR].any() and not lung[stack == BODY].any()
    # the GGO blob is enclosed by aerated lung: hole filling takes it in
    assert lung[stack == GGO].all()
