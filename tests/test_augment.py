import numpy as np
import pytest

from ser_pipeline.audio.augment import AugmentConfig, augment_clips, augment_training_split

SR = 16_000
ALWAYS = AugmentConfig(p=1.0)  # every transform on every copy: noise, pitch shift, time stretch


def tone(freq, seconds=0.5):
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(y):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[spectrum.argmax()])


def test_every_augmented_copy_differs_from_its_source_and_keeps_length_dtype_and_rate():
    clips = [tone(220), tone(330, seconds=0.4)]
    out, origin = augment_clips(clips, SR, copies=3, seed=1, config=ALWAYS)
    assert len(out) == 6 and origin.tolist() == [0, 0, 0, 1, 1, 1]
    lo, hi = 2 ** (ALWAYS.pitch_semitones[0] / 12), 2 ** (ALWAYS.pitch_semitones[1] / 12)
    for k, (copy, i) in enumerate(zip(out, origin)):
        source = clips[i]
        assert copy.shape == source.shape and copy.dtype == np.float32, k
        assert np.isfinite(copy).all(), k
        # changed audibly, not by float rounding: at least the added noise's smallest amplitude
        assert np.sqrt(np.mean((copy - source) ** 2)) >= ALWAYS.noise_amplitude[0], k
        # still samples at SR: the tone moved at most by the configured pitch range (the time
        # stretch keeps pitch), as it would not if the copy had been resampled to another rate
        f0 = dominant_hz(source)
        assert f0 * lo - 4 <= dominant_hz(copy) <= f0 * hi + 4, (k, f0, dominant_hz(copy))
    # the three copies of one clip are three different draws
    for i in (0, 1):
        a, b, c = (out[k] for k in np.flatnonzero(origin == i))
        assert not np.array_equal(a, b) and not np.array_equal(b, c) and not np.array_equal(a, c)


@pytest.mark.parametrize("config", [None, ALWAYS], ids=["default", "always"])
def test_augmentation_is_reproducible_per_seed_and_leaves_the_global_generators_alone(config):
    import random

    clips = [tone(220), tone(330)]
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    out, origin = augment_clips(clips, SR, copies=3, seed=1, config=config)
    assert (np.random.random(), random.random()) == (expected_np, expected_py)
    again, origin_again = augment_clips(clips, SR, copies=3, seed=1, config=config)
    assert origin.tolist() == origin_again.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    other, _ = augment_clips(clips, SR, copies=3, seed=2, config=config)
    assert not all(np.array_equal(a, b) for a, b in zip(out, other))
    # inputs are not modified in place
    np.testing.assert_array_equal(clips[0], tone(220))


def test_only_training_clips_are_augmented():
    # each clip has its own length, and augmentation keeps length: a copy's length names its source
    clips = [tone(220, seconds=0.3 + 0.1 * i) for i in range(5)]
    train_index = np.array([0, 3])
    out, source = augment_training_split(clips, train_index, SR, copies=2, seed=0, config=ALWAYS)
    assert source.tolist() == [0, 0, 3, 3]
    assert [len(c) for c in out] == [len(clips[0])] * 2 + [len(clips[3])] * 2
    # the copies are those of the training clips alone: nothing of the others is drawn upon
    alone, _ = augment_clips([clips[0], clips[3]], SR, copies=2, seed=0, config=ALWAYS)
    assert all(np.array_equal(a, b) for a, b in zip(out, alone))
    assert all(not np.array_equal(c, clips[s]) for c, s in zip(out, source))
