"""The predictor bridge: sizes map back, stages chain, pipelines round-trip, bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssinfnet.errors import InputError
from ssinfnet.inference import predictor
from ssinfnet.inference.predictor import Pipeline, default_pipeline, load_pipeline, predict_single, save_pipeline
from ssinfnet.models import build_model

SIZES = [(70, 45), (64, 64), (33, 101)]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    single = build_model("infnet", width=8, rfb_channels=4)
    multi = build_model("multi_unet", width=8)
    return single, multi


def images():
    rng = np.random.default_rng(0)
    return [rng.random(size, dtype=np.float32) for size in SIZES]


def test_single_stage_maps_back_to_each_original_size(models):
    single, _ = models
    preds = list(Pipeline(single, size=64, threshold=0.5, device="cpu").predict(images(), batch_size=2))
    assert [p.infection_prob.shape for p in preds] == SIZES
    for p in preds:
        assert p.class_probs is None
        assert p.infection_prob.dtype == np.float32 and p.labels.dtype == np.int64
        assert ((p.infection_prob >= 0) & (p.infection_prob <= 1)).all()
        assert np.array_equal(p.labels, (p.infection_prob >= 0.5).astype(np.int64))


def test_predictions_match_a_direct_forward_pass(models):
    single, _ = models
    image = images()[1]  # already at model size: no resizing on either side
    prob = predict_single(single, [image], size=64)[0]
    with torch.no_grad():
        expected = torch.sigmoid(single.eval()(torch.from_numpy(image)[None, None])["S_2"])[0, 0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)


def test_two_stage_feeds_the_prior_and_labels_by_argmax(models):
    single, multi = models
    pipeline = Pipeline(single, multi, size=64, device="cpu")
    preds = list(pipeline.predict(images(), batch_size=8))
    for p, size in zip(preds, SIZES):
        assert p.class_probs.shape == (3, *size) and p.class_probs.dtype == np.float32
        np.testing.assert_allclose(p.class_probs.sum(0), 1.0, atol=1e-5)
        assert np.array_equal(p.labels, p.class_probs.argmax(0))
    # The multi stage really sees the single stage's probability as its second channel.
    image = images()[1]
    with torch.no_grad():
        x = torch.from_numpy(image)[None, None]
        prior = torch.sigmoid(single(x)["S_2"])
        expected = torch.softmax(multi.eval()(torch.cat([x, prior], 1))["out"], 1)[0].numpy()
    np.testing.assert_allclose(preds[1].class_probs, expected, atol=1e-5)


def test_bf16_path_stays_close_to_fp32(models):
    single, _ = models
    fp32 = predict_single(single, images(), size=64)
    fast = predict_single(single, images(), size=64, bf16=True)
    assert max(np.abs(a - b).max() for a, b in zip(fp32, fast)) < 0.1


def test_pipeline_round_trip(tmp_path, models):
    single, multi = models
    pipeline = Pipeline(single, multi, size=64, threshold=0.3, meta={"trained_on": "demo"}, device="cpu")
    save_pipeline(tmp_path / "p", pipeline)
    loaded = load_pipeline(tmp_path / "p")
    assert (loaded.size, loaded.threshold, loaded.meta) == (64, 0.3, {"trained_on": "demo"})
    for a, b in zip(pipeline.predict(images()), loaded.predict(images())):
        # Not bit-equal: an earlier bf16 test left the fixture models in channels_last memory format.
        np.testing.assert_allclose(a.class_probs, b.class_probs, atol=1e-6)


def test_missing_default_weights_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor, "DEFAULT_WEIGHTS", tmp_path / "absent")
    with pytest.raises(InputError, match="no bundled model is installed"):
        default_pipeline()
    with pytest.raises(InputError, match="pipeline.json missing"):
        load_pipeline(tmp_path)


def test_bad_images_and_stages_are_refused(models):
    single, multi = models
    pipeline = Pipeline(single, size=64, device="cpu")
    with pytest.raises(InputError, match=r"image 1: values must be finite and in \[0, 1\]"):
        list(pipeline.predict([np.zeros((8, 8)), np.full((8, 8), 300.0)]))
    with pytest.raises(InputError, match="2-D"):
        list(pipeline.predict([np.zeros((3, 8, 8))]))
    with pytest.raises(ValueError, match="single model must take 1"):
        Pipeline(multi)
    with pytest.raises(ValueError, match="reconstruction heads"):
        Pipeline(build_model("unet", width=8).use_heads("reconstruction"))


def test_an_equalized_pipeline_feeds_the_equalized_image_and_stages_must_agree(models):
    from ssinfnet.data.intensity import EQUALIZE_CLIP, clahe, to_canonical

    single, multi = models
    image = np.zeros((64, 64), np.float32)
    image[8:56, 8:28] = image[8:56, 36:56] = 0.2  # lungs in tissue, so the canonical map has anchors
    image += np.random.default_rng(0).random((64, 64), dtype=np.float32) * 0.3
    equalized = build_model("infnet", width=8, rfb_channels=4)
    equalized.load_state_dict(single.state_dict())
    equalized.input_contrast = "equalized"
    prob = next(Pipeline(equalized, size=64, device="cpu").predict([image])).infection_prob
    network_input = clahe(to_canonical(image), EQUALIZE_CLIP)
    with torch.no_grad():
        expected = torch.sigmoid(single.eval()(torch.from_numpy(network_input)[None, None])["S_2"])[0, 0].numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    with pytest.raises(ValueError, match="different input contrasts: single 'equalized', multi 'unit'"):
        Pipeline(equalized, multi, size=64, device="cpu")
