import numpy as np
import pytest

from _synthetic import tiny_trained
from ser_pipeline.errors import FeatureSpecMismatch
from ser_pipeline.inference.predict import pool_windows, predict_proba, predictions_frame
from ser_pipeline.labels import EMOTIONS


@pytest.fixture(scope="module")
def trained():
    return tiny_trained("pooled", "global", epochs=2)


def test_a_model_refuses_features_of_another_spec(trained):
    model, feats, items, _ = trained
    with pytest.raises(FeatureSpecMismatch, match="spec-a.*spec-b|trained on features with spec"):
        predict_proba(model, feats, items.speaker, "spec-b")


def test_windows_are_pooled_per_utterance(trained):
    model, feats, items, _ = trained
    windows = predict_proba(model, feats, None, "spec-a")
    ids = [f"u{i // 3}" for i in range(len(windows))]
    pooled = predict_proba(model, feats, None, "spec-a", utterance_ids=ids)
    assert pooled.shape == (len(windows) // 3, 4)
    np.testing.assert_allclose(pooled[1], windows[3:6].mean(axis=0), rtol=1e-5)


def test_pool_windows_keeps_first_appearance_order():
    ids, pooled = pool_windows(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), ["b", "a", "b"])
    assert ids == ["b", "a"]
    np.testing.assert_allclose(pooled, [[0.75, 0.25], [0.0, 1.0]])


def test_predictions_frame_has_a_column_per_emotion():
    proba = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    frame = predictions_frame(["u1", "u2"], proba, ["neutral", "happy", "sad"], "v1", context_proba=proba[::-1])
    assert list(frame.label) == ["happy", "neutral"] and frame.confidence.tolist() == pytest.approx([0.7, 0.6])
    assert {f"p_{e}" for e in EMOTIONS} <= set(frame.columns) and np.isnan(frame.p_calm).all()
    assert list(frame.context_label) == ["neutral", "happy"]


@pytest.mark.parametrize("n, batch_size", [(1, 256), (37, 16), (64, 64), (300, 128)])
def test_fixed_shape_batches_give_the_models_own_predictions(trained, n, batch_size):
    from ser_pipeline.inference.predict import predict_batches

    model, feats, _, _ = trained
    x = np.resize(np.asarray(feats["mfcc"], np.float32), (n, *feats["mfcc"].shape[1:]))[..., None]
    expected = np.asarray(model.model.predict(x, verbose=0))
    got = predict_batches(model.model, x, batch_size)
    assert got.shape == (n, expected.shape[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
