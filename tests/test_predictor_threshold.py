"""The pipeline labels a single-stage prediction with its own threshold (the one chosen on
validation), not a fixed 0.5: hand-made network whose probability rises across the image."""

import numpy as np
import pytest
from torch import nn

from ssinfnet.inference.predictor import Pipeline, load_pipeline, save_pipeline


class Ramp(nn.Module):
    """Single stage by hand: logit = 8 * (x - 0.5), so the probability follows the image."""

    in_channels, num_classes, main_output = 1, 1, "out"

    def forward(self, x):
        return {"out": 8.0 * (x - 0.5)}


def ramp_image(size: int = 32) -> np.ndarray:
    return np.tile(np.linspace(0, 1, size, dtype=np.float32), (size, 1))


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_labels_use_the_pipeline_threshold(threshold):
    (prediction,) = Pipeline(Ramp(), size=32, threshold=threshold, device="cpu").predict([ramp_image()])
    assert np.array_equal(prediction.labels, (prediction.infection_prob >= threshold).astype(np.int64))
    expected = (1 / (1 + np.exp(-8.0 * (ramp_image() - 0.5))) >= threshold).mean()
    assert prediction.labels.mean() == pytest.approx(expected, abs=1 / 32)  # one column of rounding


def test_a_lower_threshold_labels_more_and_survives_save_and_load(tmp_path):
    labelled = {}
    for threshold in (0.2, 0.8):
        pipeline = Pipeline(Ramp(), size=32, threshold=threshold, device="cpu")
        labelled[threshold] = next(pipeline.predict([ramp_image()])).labels.sum()
    assert labelled[0.2] > labelled[0.8] > 0
    # A real network through save/load: the threshold travels in pipeline.json.
    from ssinfnet.models import build_model

    save_pipeline(tmp_path / "p", Pipeline(build_model("unet", width=4), size=32, threshold=0.8, device="cpu"))
    loaded = load_pipeline(tmp_path / "p", device="cpu")
    assert loaded.threshold == 0.8
    (prediction,) = loaded.predict([ramp_image()])
    assert np.array_equal(prediction.labels, (prediction.infection_prob >= 0.8).astype(np.int64))
