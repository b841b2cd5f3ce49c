import numpy as np

from ser_pipeline.audio.augment import augment_clips, augment_training_split

SR = 16_000


def tone(freq, seconds=0.5):
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_augmentation_changes_the_audio_keeps_length_and_is_seeded():
    clips = [tone(220), tone(330)]
    out, origin = augment_clips(clips, SR, copies=3, seed=1)
    assert len(out) == 6 and origin.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(len(o) == len(clips[i]) and o.dtype == np.float32 for o, i in zip(out, origin))
    assert any(not np.allclose(o, clips[i]) for o, i in zip(out, origin))
    again, _ = augment_clips(clips, SR, copies=3, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_only_training_clips_are_augmented():
    # each clip has its own length, and augmentation keeps length: a copy's length names its source
    clips = [tone(220, seconds=0.3 + 0.1 * i) for i in range(5)]
    train_index = np.array([0, 3])
    out, source = augment_training_split(clips, train_index, SR, copies=2, seed=0)
    assert source.tolist() == [0, 0, 3, 3]
    assert [len(c) for c in out] == [len(clips[0])] * 2 + [len(clips[3])] * 2
