import numpy as np

from _synthetic import synthetic_set
from ser_pipeline.runs.crossval import cross_validate
from ser_pipeline.training.dataset import LabelledSet
from ser_pipeline.features.spec import FeatureSpec
from ser_pipeline.runs.retrain import TrainingSet
from ser_pipeline.training.fit import TrainConfig


def _labelled(n_speakers=8):
    feats, items = synthetic_set(n_speakers=n_speakers, per_class=3, frames=32)
    windows = items.assign(window=0, path=items.utterance_id)
    return LabelledSet(windows, feats)


def test_every_speaker_is_held_out_once_and_predictions_are_pooled():
    data = _labelled()
    config = TrainConfig(architecture="pooled", input_kind="mfcc", normalization="speaker", corrupted_copies=0, epochs=8,
                         batch_size=16, validation_share=0.25, speaker_prior_utterances=0.0)  # each voice's own offset
    lines = []
    cv = cross_validate(TrainingSet(data, FeatureSpec(), 0.0), config, k=2, seed=0, progress=lines.append)

    held = [s for f in cv.folds for s in f.test_speakers]
    assert sorted(held) == sorted(data.windows.speaker.unique())  # each once
    for f in cv.folds:
        parts = [set(f.train_speakers), set(f.val_speakers), set(f.test_speakers)]
        assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum("fold" in line and "held out" in line for line in lines) == 2

    assert cv.metrics["n"] == len(data.utterances) == len(cv.held_out.utterances)
    assert sorted(cv.held_out.utterances.utterance_id) == sorted(data.utterances.utterance_id)
    n_per_fold = [len(f.test_speakers) * 12 for f in cv.folds]  # 4 classes x 3 clips per speaker
    pooled_accuracy = sum(f.accuracy * n for f, n in zip(cv.folds, n_per_fold)) / sum(n_per_fold)
    assert np.isclose(cv.metrics["accuracy"], pooled_accuracy)
    assert cv.metrics["uar"] > 0.6  # the classes are visible once each voice's offset is removed
    assert set(cv.metrics["groups"]) == {"corpus", "gender"}


def test_without_a_validation_share_every_other_speaker_trains():
    data = _labelled()
    config = TrainConfig(architecture="pooled", input_kind="mfcc", normalization="speaker", corrupted_copies=0, epochs=2,
                         batch_size=16)
    assert config.validation_share == 0.0  # the recommended recipe: no speakers kept apart to early-stop on
    cv = cross_validate(TrainingSet(data, FeatureSpec(), 0.0), config, k=2, seed=0)
    speakers = set(data.windows.speaker)
    for f in cv.folds:
        assert not f.val_speakers
        assert set(f.train_speakers) == speakers - set(f.test_speakers)
        assert f.epochs == config.epochs  # a fixed budget: nothing to stop early on
