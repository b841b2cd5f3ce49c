import numpy as np
import pytest

from _synthetic import synthetic_set, tiny_trained
from ser_pipeline.labels import LabelSet
from ser_pipeline.training.splits import Split, speaker_split
from ser_pipeline.training.fit import TrainConfig, model_inputs, train, training_fingerprint


@pytest.fixture(scope="module")
def trained_pooled():
    return tiny_trained("pooled", "speaker", epochs=20)


def test_tiny_model_learns_the_classes_of_unseen_speakers(trained_pooled):
    from ser_pipeline.inference.predict import predict_proba

    trained, feats, items, split = trained_pooled
    proba = predict_proba(trained, {k: v[split.test] for k, v in feats.items()}, items.speaker.iloc[split.test], "spec-a")
    y = np.array(trained.labels.indices(items.emotion.iloc[split.test]))
    assert (proba.argmax(axis=1) == y).mean() >= 0.75  # chance is 0.25
    assert trained.split_speakers["test"] == list(split.test_speakers)
    assert trained.history["loss"][-1] < trained.history["loss"][0]


def test_normaliser_is_fitted_on_the_training_split_only(trained_pooled):
    trained, feats, items, split = trained_pooled
    x = model_inputs(feats, "mfcc")
    np.testing.assert_allclose(trained.normalizer.mean, x[split.train].astype(np.float64).mean(axis=(0, 2)), rtol=1e-5)
    assert not np.allclose(trained.normalizer.mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-3)


def test_fingerprint_covers_exactly_the_training_utterances(trained_pooled):
    trained, _, items, split = trained_pooled
    train_items = items.iloc[split.train]
    assert trained.fingerprint == training_fingerprint(train_items.utterance_id, train_items.emotion)


@pytest.mark.slow
def test_training_is_reproducible_with_a_seed():
    from ser_pipeline.inference.predict import predict_proba

    runs = [tiny_trained("seed", "global", epochs=2, seed=3) for _ in range(2)]
    (a, feats, items, _), (b, *_rest) = runs
    pa = predict_proba(a, feats, items.speaker, "spec-a")
    pb = predict_proba(b, feats, items.speaker, "spec-a")
    np.testing.assert_allclose(pa, pb, atol=1e-6)
    assert a.history["loss"] == pytest.approx(b.history["loss"])


def test_augmented_copies_are_added_to_training_only_and_a_leaky_split_is_refused():
    feats, items = synthetic_set(n_speakers=6, per_class=2, frames=16)
    labels = LabelSet(labels=("neutral", "happy", "sad", "angry"))
    split = speaker_split(items, seed=0)
    aug = ({k: v[split.train] * 1.01 for k, v in feats.items()}, list(items.emotion.iloc[split.train]),
           list(items.speaker.iloc[split.train]))
    trained = train(feats, items.emotion, items.speaker, split, labels, "h",
                    TrainConfig(architecture="pooled", input_kind="mfcc", epochs=1), augmented=aug, progress=None)
    assert trained.history["loss"]
    leaky = Split(train=np.arange(len(items)), val=split.val, test=split.test, train_speakers=(), val_speakers=(),
                  test_speakers=split.test_speakers, kind="speaker")
    with pytest.raises(ValueError, match="not speaker-disjoint"):
        train(feats, items.emotion, items.speaker, leaky, labels, "h", TrainConfig(architecture="pooled", input_kind="mfcc", epochs=1), progress=None)


def test_progress_line_per_epoch():
    feats, items = synthetic_set(n_speakers=6, per_class=2, frames=16)
    lines = []
    train(feats, items.emotion, items.speaker, speaker_split(items, seed=0), LabelSet(labels=("neutral", "happy", "sad", "angry")),
          "h", TrainConfig(architecture="pooled", input_kind="mfcc", epochs=3, early_stopping_patience=100), progress=lines.append)
    assert len(lines) == 3 and lines[0].startswith("epoch   1/3") and "val_loss" in lines[0]


def test_model_inputs_stacks_the_four_families():
    feats, _ = synthetic_set(n_speakers=1, per_class=1, frames=8, families=("mfcc", "chroma", "mel", "contrast"))
    stacked = model_inputs(feats, "stacked")
    assert stacked.shape == (4, 187, 8)
    np.testing.assert_array_equal(stacked[:, 40:52], feats["chroma"])
    with pytest.raises(ValueError, match="chroma"):
        model_inputs({"mfcc": feats["mfcc"]}, "stacked")
