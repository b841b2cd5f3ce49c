import numpy as np
import pandas as pd
import pytest

from ser_pipeline.training.splits import random_split, speaker_kfold, speaker_split


def ravdess_like(n_actors=16, per_emotion=4):
    rows = []
    for a in range(1, n_actors + 1):
        for e in ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"):
            for k in range(per_emotion if e != "neutral" else per_emotion // 2):
                rows.append({"speaker": f"ravdess:{a:02d}", "gender": "male" if a % 2 else "female", "emotion": e})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_speaker_split_never_shares_a_speaker_and_covers_everything(seed):
    df = ravdess_like()
    split = speaker_split(df, seed=seed)
    parts = [set(df.speaker.iloc[idx]) for idx in (split.train, split.val, split.test)]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert sorted(np.concatenate([split.train, split.val, split.test])) == list(range(len(df)))
    assert set(split.test_speakers) == parts[2] and set(split.train_speakers) == parts[0]
    # 16 equal actors at 70/20/10: 11 / 3 / 2 actors is the closest to the fractions
    assert (len(parts[0]), len(parts[1]), len(parts[2])) == (11, 3, 2)


@pytest.mark.parametrize("seed", range(10))
def test_speaker_split_balances_gender_in_every_part_whatever_the_seed(seed):
    # 8 male and 8 female actors with equal utterance counts: the gender mix of every part can
    # match the whole set's to within one speaker (test 1/1, validation 2/1, train 6/5), and
    # the split's scoring of gender distributions should find it for every seed.
    df = ravdess_like()
    split = speaker_split(df, seed=seed)
    parts = {"train": split.train, "val": split.val, "test": split.test}
    speakers = {name: set(df.speaker.iloc[idx]) for name, idx in parts.items()}
    assert not speakers["train"] & speakers["val"] and not speakers["train"] & speakers["test"]
    assert not speakers["val"] & speakers["test"]
    gender_of = df.drop_duplicates("speaker").set_index("speaker").gender
    for name, members in speakers.items():
        counts = gender_of[sorted(members)].value_counts()
        male, female = int(counts.get("male", 0)), int(counts.get("female", 0))
        assert abs(male - female) <= 1, f"seed {seed}: {name} has {male} male and {female} female speakers"


def test_speaker_split_is_deterministic_per_seed():
    df = ravdess_like()
    a, b = speaker_split(df, seed=5), speaker_split(df, seed=5)
    assert a.test_speakers == b.test_speakers and np.array_equal(a.train, b.train)


def test_speaker_split_stratifies_when_speakers_hold_different_emotions():
    # speakers 0-5 only "happy", 6-11 only "sad": every part should get both emotions
    df = pd.DataFrame([{"speaker": f"s{s}", "emotion": "happy" if s < 6 else "sad"} for s in range(12) for _ in range(10)])
    split = speaker_split(df, fractions=(0.5, 0.25, 0.25), seed=0)
    for idx in (split.train, split.val, split.test):
        assert set(df.emotion.iloc[idx]) == {"happy", "sad"}


def test_speaker_split_rejects_too_few_speakers():
    df = pd.DataFrame({"speaker": ["a", "a", "b"], "emotion": ["x", "y", "x"]})
    with pytest.raises(ValueError, match="speakers"):
        speaker_split(df)


def test_random_split_is_utterance_level_and_leaks_speakers():
    df = ravdess_like()
    split = random_split(df, seed=0)
    assert len(split.test) == pytest.approx(0.1 * len(df), abs=2)
    assert set(split.train_speakers) & set(split.test_speakers)  # the leak the seed had
    assert split.kind == "random"


def test_speaker_kfold_holds_out_each_speaker_exactly_once():
    df = ravdess_like()
    folds = speaker_kfold(df, k=4, seed=0)
    held = [set(df.speaker.iloc[te]) for _, te in folds]
    assert sorted(s for h in held for s in h) == sorted(df.speaker.unique())
    for tr, te in folds:
        assert set(df.speaker.iloc[tr]).isdisjoint(df.speaker.iloc[te])


def test_pinned_test_speakers():
    df = ravdess_like()
    split = speaker_split(df, seed=0, test_speakers=["ravdess:03", "ravdess:12"])
    assert split.test_speakers == ("ravdess:03", "ravdess:12")
    assert set(df.speaker.iloc[split.test]) == {"ravdess:03", "ravdess:12"}
    assert not set(split.train_speakers) & set(split.test_speakers) and not set(split.val_speakers) & set(split.test_speakers)
    assert len(split.train) + len(split.val) + len(split.test) == len(df)
    with pytest.raises(ValueError, match="not in the data"):
        speaker_split(df, test_speakers=["ravdess:99"])
