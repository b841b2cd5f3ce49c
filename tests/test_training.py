from dataclasses import replace

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


class _RecordingCache(dict):
    """An audio cache (path -> samples) that records every path read from it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: list[str] = []

    def __getitem__(self, path):
        self.read.append(path)
        return super().__getitem__(path)


def test_augmented_copies_are_added_to_training_only_and_a_leaky_split_is_refused(monkeypatch):
    """``retrain.fit`` corrupts copies of the training clips only and ``train`` feeds them to the
    network beside the training rows; validation is the validation rows untouched, and the
    test rows reach the network nowhere."""
    import keras

    from ser_pipeline.features.spec import FeatureSpec
    from ser_pipeline.runs import retrain
    from ser_pipeline.training import dataset

    # a small spec (16 frames at 16 kHz) and clips shorter than one window: one window per copy
    spec = FeatureSpec(sample_rate=16_000, n_frames=16)
    feats, items = synthetic_set(n_speakers=6, per_class=1, frames=spec.n_frames)
    windows = items.assign(window=0, path=[f"memory://{u}.wav" for u in items.utterance_id])
    training_set = retrain.TrainingSet(dataset.LabelledSet(windows, feats), spec, 0.0)
    split = retrain.make_split(training_set, seed=0, validation_share=0.2)
    rng = np.random.default_rng(0)
    audio = _RecordingCache({p: (0.1 * rng.standard_normal(spec.n_samples // 2)).astype(np.float32) for p in windows.path})

    made = []
    real_copies = dataset.corrupted_copies

    def copies_spy(data, rows, *args, **kwargs):
        made.append((np.asarray(rows).copy(), real_copies(data, rows, *args, **kwargs)))
        return made[-1][1]

    fed = []
    real_fit = keras.Model.fit

    def fit_spy(self, x=None, y=None, *args, **kwargs):
        fed.append((np.asarray(x), np.asarray(y), kwargs.get("validation_data")))
        return real_fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(dataset, "corrupted_copies", copies_spy)
    monkeypatch.setattr(keras.Model, "fit", fit_spy)
    config = TrainConfig(architecture="pooled", input_kind="mfcc", normalization="global", corrupted_copies=2, epochs=1,
                         calibration_folds=0)
    trained = retrain.fit(training_set, split, config, audio_cache=audio)

    # the copies are asked for the training rows only and read only training speakers' audio
    # (the babble they are mixed with included)
    assert len(made) == 1
    rows, (aug_feats, aug_emotions, aug_speakers) = made[0]
    np.testing.assert_array_equal(rows, split.train)
    train_items = items.iloc[split.train]
    assert audio.read and set(audio.read) <= set(windows.path.iloc[split.train])
    assert set(aug_speakers) <= set(split.train_speakers)
    assert not set(aug_speakers) & (set(split.val_speakers) | set(split.test_speakers))
    # every training utterance gives exactly ``corrupted_copies`` copies, with its own label
    assert sorted(zip(aug_speakers, aug_emotions)) == sorted(
        [(s, e) for s, e in zip(train_items.speaker, train_items.emotion)] * config.corrupted_copies)
    assert {f: a.shape for f, a in aug_feats.items()} == {
        f: (config.corrupted_copies * len(split.train), *shape) for f, shape in spec.shapes.items()}

    # the network is fitted once, on the training rows followed by the copies
    assert len(fed) == 1
    x_fed, y_fed, (x_val, y_val) = fed[0]
    n_train, n_aug = len(split.train), config.corrupted_copies * len(split.train)
    assert x_fed.shape == (n_train + n_aug, *feats["mfcc"].shape[1:], 1)
    x_all, norm = model_inputs(feats, "mfcc"), trained.normalizer
    np.testing.assert_array_equal(x_fed[:n_train, ..., 0], norm.transform(x_all[split.train]))
    np.testing.assert_array_equal(x_fed[n_train:, ..., 0], norm.transform(model_inputs(aug_feats, "mfcc")))
    assert y_fed.argmax(axis=1).tolist() == trained.labels.indices([*train_items.emotion, *aug_emotions])
    # validation: exactly the validation rows, no copy among them
    np.testing.assert_array_equal(np.asarray(x_val)[..., 0], norm.transform(x_all[split.val]))
    assert np.asarray(y_val).argmax(axis=1).tolist() == trained.labels.indices(items.emotion.iloc[split.val])
    # the fingerprint names the training utterances only, not the copies
    assert trained.fingerprint == training_fingerprint(train_items.utterance_id, train_items.emotion)

    labels = LabelSet(labels=("neutral", "happy", "sad", "angry"))
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
    order = ("mfcc", "chroma", "mel", "contrast")
    rows = [feats[f].shape[1] for f in order]
    assert stacked.shape == (4, sum(rows), 8) and stacked.dtype == np.float32
    starts = np.cumsum([0, *rows])
    for family, start, stop in zip(order, starts[:-1], starts[1:]):
        np.testing.assert_array_equal(stacked[:, start:stop], feats[family])
    with pytest.raises(ValueError, match="chroma"):
        model_inputs({"mfcc": feats["mfcc"]}, "stacked")


def test_a_temperature_fitted_on_held_out_probabilities_undoes_overconfidence():
    from ser_pipeline.training.fit import fit_temperature, tempered

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 8)) * 1.5
    truth = np.array([rng.choice(8, p=np.exp(row) / np.exp(row).sum()) for row in logits])  # calibrated at T=1
    calibrated = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    overconfident = tempered(calibrated, 1 / 3)  # three times too sharp
    assert np.allclose(tempered(calibrated, 1.0), calibrated)
    assert fit_temperature(overconfident, truth) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(calibrated, truth) == pytest.approx(1.0, rel=0.1)


def test_calibration_trains_one_model_per_fold_of_training_speakers_and_stores_its_temperature(monkeypatch, tmp_path):
    """``retrain.fit`` with ``calibration_folds`` trains the model and one model per fold of its
    *training* speakers (never a test speaker), and the fitted temperature rides with the model
    through the registry into ``predict_proba``."""
    import keras

    from ser_pipeline.features.spec import FeatureSpec
    from ser_pipeline.inference.predict import predict_proba
    from ser_pipeline.runs import retrain
    from ser_pipeline.settings import Settings
    from ser_pipeline.training import dataset, registry

    spec = FeatureSpec(sample_rate=16_000, n_frames=16)
    feats, items = synthetic_set(n_speakers=8, per_class=2, frames=spec.n_frames)
    windows = items.assign(window=0, path=[f"memory://{u}.wav" for u in items.utterance_id])
    training_set = retrain.TrainingSet(dataset.LabelledSet(windows, feats), spec, 0.0)
    split = retrain.make_split(training_set, seed=0)
    fed = []
    real_fit = keras.Model.fit

    def fit_spy(self, x=None, y=None, *args, **kwargs):
        fed.append(len(x))
        return real_fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_spy)
    config = TrainConfig(architecture="pooled", input_kind="mfcc", normalization="global", corrupted_copies=0, epochs=2,
                         calibration_folds=3)
    trained = retrain.fit(training_set, split, config)
    assert len(fed) == 4 and fed[0] == len(split.train) and all(n < len(split.train) for n in fed[1:])
    assert sum(len(split.train) - n for n in fed[1:]) == len(split.train)  # each training row held out once
    assert trained.temperature != 1.0 and 0.25 <= trained.temperature <= 8.0

    settings = Settings(registry_url=(tmp_path / "registry").as_uri())
    version = registry.save_model(trained, {}, settings.registry_url, settings=settings)
    loaded = registry.load_model(settings.registry_url, version, settings=settings)
    assert loaded.temperature == trained.temperature
    sharp = predict_proba(replace(loaded, temperature=1.0), feats, list(items.speaker), spec)
    calibrated = predict_proba(loaded, feats, list(items.speaker), spec)
    np.testing.assert_array_equal(sharp.argmax(axis=1), calibrated.argmax(axis=1))
    assert (calibrated.max(axis=1) < sharp.max(axis=1)).mean() > 0.9 if loaded.temperature > 1 else \
        (calibrated.max(axis=1) > sharp.max(axis=1)).mean() > 0.9
