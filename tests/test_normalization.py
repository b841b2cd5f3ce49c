import numpy as np
import pytest

from ser_pipeline.normalization import Normalizer, fit_normalizer


def test_global_normaliser_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(50, 4, 20))
    test = rng.normal(10.0, 1.0, size=(5, 4, 20))
    norm = fit_normalizer(train, "global")
    np.testing.assert_allclose(norm.mean, train.mean(axis=(0, 2)))
    z = norm.transform(test)
    assert z.mean() > 2.5  # the test shift survives: its own statistics were never used


def test_speaker_mode_standardises_each_speaker_with_its_own_statistics():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (6, 3, 10)), rng.normal(50, 5, (6, 3, 10))])
    speakers = ["a"] * 6 + ["b"] * 6
    norm = fit_normalizer(x[:6], "speaker")
    z = norm.transform(x, speakers)
    for rows in (slice(0, 6), slice(6, 12)):
        np.testing.assert_allclose(z[rows].mean(axis=(0, 2)), 0, atol=1e-4)
        np.testing.assert_allclose(z[rows].std(axis=(0, 2)), 1, atol=1e-3)


def test_speaker_mode_falls_back_to_global_for_few_or_unknown_speakers():
    rng = np.random.default_rng(2)
    train = rng.normal(0, 1, (20, 3, 10))
    norm = fit_normalizer(train, "speaker", min_speaker_utterances=5)
    x = rng.normal(0, 1, (3, 3, 10))
    np.testing.assert_allclose(norm.transform(x, ["c", "c", None]), Normalizer("global", norm.mean, norm.std).transform(x))
    with pytest.raises(ValueError, match="speaker"):
        norm.transform(x)


def test_round_trip_through_bytes():
    norm = fit_normalizer(np.random.default_rng(3).normal(size=(4, 2, 5)), "speaker", min_speaker_utterances=3)
    back = Normalizer.from_bytes(norm.to_bytes())
    assert back.mode == "speaker" and back.min_speaker_utterances == 3
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)


def test_shape_mismatch_is_a_clear_error():
    norm = fit_normalizer(np.zeros((2, 4, 5)) + np.arange(4)[None, :, None])
    with pytest.raises(ValueError, match=r"\(n, 4, frames\)"):
        norm.transform(np.zeros((2, 5, 5)))
