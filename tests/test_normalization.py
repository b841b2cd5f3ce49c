import numpy as np
import pytest

from ser_pipeline.training.normalization import Normalizer, fit_normalizer


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


def test_shrinkage_pulls_a_speaker_with_few_utterances_toward_the_global_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(0.0, 1.0, (400, 2, 1)).astype(np.float32)
    few = np.full((2, 2, 1), 4.0, np.float32)  # two utterances of one speaker, far from the population
    many = rng.normal(4.0, 1.0, (200, 2, 1)).astype(np.float32)
    k = 5.0
    norm = fit_normalizer(train, "speaker", min_speaker_utterances=1, prior_utterances=k)
    # two utterances: mean (2*4 + 5*global) / 7, so the speaker's offset mostly survives
    expected_mean = (2 * 4.0 + k * norm.mean) / (2 + k)
    expected_std = np.sqrt((2 * (0.0 + (4.0 - expected_mean) ** 2) + k * (norm.std**2 + (norm.mean - expected_mean) ** 2)) / (2 + k))
    shown = norm.transform(few, ["s"] * 2)[0, :, 0]
    np.testing.assert_allclose(shown, (4.0 - expected_mean) / expected_std, rtol=1e-4)
    assert np.all(shown > 0.5)  # the speaker's offset from the population is not erased
    # two hundred utterances: standardised by themselves (prior weight 5/205)
    assert abs(float(norm.transform(many, ["t"] * 200).mean())) < 0.15


def test_transform_as_heard_standardises_small_one_sided_groups_by_their_own_statistics():
    rng = np.random.default_rng(1)
    n = 120
    speakers = ["a"] * 60 + ["b"] * 60
    emotions = (["angry"] * 30 + ["sad"] * 30) * 2
    x = rng.normal(0.0, 1.0, (n, 3, 1)).astype(np.float32)
    x[[i for i, e in enumerate(emotions) if e == "angry"]] += 3.0  # emotion shifts the features
    norm = fit_normalizer(x, "speaker", min_speaker_utterances=1, prior_utterances=0.0)
    full = norm.transform(x, speakers)
    heard = norm.transform_as_heard(x, speakers, emotions, max_group=4, rng=np.random.default_rng(2))
    assert heard.shape == x.shape and np.isfinite(heard).all()
    angry = np.array([e == "angry" for e in emotions])
    # with the whole speaker's statistics angry rows stand far above sad ones; in small groups,
    # half of them of one emotion, much of that difference is absorbed by the group's own mean
    gap_full = full[angry].mean() - full[~angry].mean()
    gap_heard = heard[angry].mean() - heard[~angry].mean()
    assert gap_full > 1.5 and gap_heard < 0.75 * gap_full
    # and the result is reproducible from the generator's seed
    again = norm.transform_as_heard(x, speakers, emotions, max_group=4, rng=np.random.default_rng(2))
    assert np.array_equal(heard, again)


def test_clip_bounds_a_voice_far_outside_the_training_voices_and_survives_the_registry_bytes():
    rng = np.random.default_rng(3)
    train = rng.normal(0.0, 1.0, (100, 2, 1)).astype(np.float32)
    train[:, 1] = 1.0 + rng.normal(0.0, 1e-4, (100, 1))  # nearly constant over the training voices
    norm = fit_normalizer(train, "global", clip_z=5.0)
    z = norm.transform(np.array([[[0.5], [1.01]]], np.float32))
    assert z[0, 0, 0] == pytest.approx((0.5 - float(norm.mean[0])) / float(norm.std[0]), rel=1e-4)  # within range: untouched
    assert z[0, 1, 0] == 5.0  # 100 stds away: bounded
    again = Normalizer.from_bytes(norm.to_bytes())
    assert again.clip_z == 5.0 and np.array_equal(again.transform(z * 0 + 9.0), norm.transform(z * 0 + 9.0))
