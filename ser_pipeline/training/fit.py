"""Training a classifier on extracted features: seeded, class-weighted, early-stopped.

``train`` takes feature arrays for the whole labelled set plus a ``Split`` (see
``splits.py``); it fits the normaliser on the training part only, trains on the training part
(plus optional augmented copies of *training* clips), early-stops and reduces the learning
rate on the validation part, and never looks at the test part. The result is a
``TrainedModel`` holding everything needed to predict and to trace the model back to its data.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ser_pipeline.labels import LabelSet
from ser_pipeline.training.networks import INPUT_FAMILIES, build_model
from ser_pipeline.training.normalization import Normalizer, fit_normalizer
from ser_pipeline.training.splits import Split


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. The defaults are the recommended recipe (docs/MODEL.md), used
    by ``ser train``, the weekly retraining flow and the demo alike."""

    architecture: str = "linear"  # "linear" (on encoder embeddings), "mlp", "pooled" or "seed" (the reference CNN); see networks.py
    input_kind: str = "encoder"  # "encoder", "functionals", "stacked" or "mfcc" (networks.INPUT_FAMILIES)
    normalization: str = "speaker"  # "speaker" or "global"; see normalization.py
    corrupted_copies: int = 2  # corrupted copies of each training clip (conditions.corrupt_for_training); 0: none
    # Per-participant statistics shrunk toward the training population's as if this many
    # population utterances were added (normalization.py). A participant heard mostly in one
    # mood pulls their own mean toward that mood: on encoder embeddings 10 keeps 4-fold UAR
    # within a point of 0 in every condition and gains 11 on one-sided participants (docs/MODEL.md).
    speaker_prior_utterances: float = 10.0
    heard_group_max: int = 0  # >0: corrupted copies standardised as few-turn participants (Normalizer.transform_as_heard)
    clip_z: float = 5.0  # >0: standardised inputs clipped to +-clip_z (a new voice far outside the training voices)
    label_merge: str = ""  # e.g. "calm=neutral"; empty: the 8 emotions as the corpora label them
    # Share of the utterances whose speakers are kept apart to early-stop on. 0: every
    # non-test speaker trains, for ``epochs`` with a cosine learning-rate decay (with sixteen
    # voices every voice counts: +0.4 to +2.4 UAR points per condition in 4-fold CV, docs/MODEL.md).
    validation_share: float = 0.0
    epochs: int = 40
    batch_size: int = 32  # 0: from the device's free memory (device.py; 32 on a CPU)
    learning_rate: float = 1e-3
    early_stopping_patience: int = 10
    reduce_lr_patience: int = 4
    reduce_lr_factor: float = 0.5
    class_weights: bool = True
    seed: int = 0
    # Speaker folds of the training speakers whose held-out probabilities fit the model's
    # softmax temperature (calibration: the analysts' expected shares and the session context
    # read the probabilities). 0: no calibration (temperature 1).
    calibration_folds: int = 3


# What each input kind is trained with unless told otherwise: the recommended recipe hears
# through the encoder; the others are the references of docs/MODEL.md, one flag away
# (``ser train --features functionals`` is the 2026-12-07 champion's recipe, ``mfcc`` the seed's CNN).
RECIPES: dict[str, dict[str, Any]] = {
    "encoder": {},
    "functionals": {"architecture": "mlp", "speaker_prior_utterances": 50.0, "heard_group_max": 8},
    "stacked": {"architecture": "pooled"},
    "mfcc": {"architecture": "seed", "normalization": "global", "corrupted_copies": 0},
}


def recipe_for(input_kind: str | None = None, **changes: Any) -> TrainConfig:
    """The recipe of ``input_kind`` (None: the recommended one) with ``changes`` applied."""
    kind = input_kind or TrainConfig.input_kind
    if kind not in RECIPES:
        raise ValueError(f"unknown model input {kind!r}; choose one of {sorted(RECIPES)}")
    return TrainConfig(**{**RECIPES[kind], "input_kind": kind, **changes})


@dataclass(frozen=True)
class TrainedModel:
    """A trained Keras model with what it needs to predict and where it came from."""

    model: Any  # keras.Model
    normalizer: Normalizer
    labels: LabelSet
    feature_spec_hash: str
    input_kind: str
    architecture: str
    fingerprint: str  # training-data fingerprint (utterance ids and labels)
    split_speakers: Mapping[str, Sequence[str]]  # {"train": [...], "val": [...], "test": [...]}
    config: TrainConfig = field(default_factory=TrainConfig)
    history: Mapping[str, Sequence[float]] = field(default_factory=dict)
    version: str | None = None  # set by the registry
    split_kind: str = "speaker"  # "random" models leak speakers and are never promoted automatically
    feature_spec: Mapping[str, Any] | None = None  # the full FeatureSpec (as a dict), to re-extract at prediction
    temperature: float = 1.0  # the softmax's log-probabilities are divided by it (fit_temperature)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready description (no arrays, no model)."""
        return {
            "labels": list(self.labels.labels),
            "label_merge": [list(m) for m in self.labels.merge],
            "feature_spec_hash": self.feature_spec_hash,
            "input_kind": self.input_kind,
            "architecture": self.architecture,
            "fingerprint": self.fingerprint,
            "split_speakers": {k: list(v) for k, v in self.split_speakers.items()},
            "split_kind": self.split_kind,
            "feature_spec": dict(self.feature_spec) if self.feature_spec is not None else None,
            "temperature": float(self.temperature),
            "config": asdict(self.config),
            "history": {k: [float(x) for x in v] for k, v in self.history.items()},
        }


def model_inputs(features: Mapping[str, np.ndarray], input_kind: str) -> np.ndarray:
    """The families an input kind uses, stacked on the row axis: ``(n, rows, frames)`` float32."""
    if input_kind not in INPUT_FAMILIES:
        raise ValueError(f"unknown model input {input_kind!r}; choose one of {sorted(INPUT_FAMILIES)}")
    missing = [f for f in INPUT_FAMILIES[input_kind] if f not in features]
    if missing:
        raise ValueError(f"input {input_kind!r} needs feature families {missing}, which were not given")
    return np.concatenate([np.asarray(features[f], dtype=np.float32) for f in INPUT_FAMILIES[input_kind]], axis=1)


def tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``proba`` ``(n, K)`` with its log-probabilities divided by ``temperature``, renormalised."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.25, 8] minimising the negative log-likelihood of held-out
    probabilities ``proba`` ``(n, K)`` with true classes ``y`` (Guo et al. 2017)."""
    y = np.asarray(y, dtype=np.int64)
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 141))
    nll = [-np.log(np.clip(tempered(proba, t)[np.arange(len(y)), y], 1e-12, 1.0)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def training_fingerprint(utterance_ids: Sequence[str], emotions: Sequence[str]) -> str:
    """sha256 over the sorted (utterance id, label) pairs a model was trained on."""
    digest = hashlib.sha256()
    for uid, emo in sorted(zip(map(str, utterance_ids), map(str, emotions))):
        digest.update(f"{uid}\t{emo}\n".encode())
    return digest.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend; deterministic ops on TensorFlow."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def _progress_callback(progress: Callable[[str], None], epochs: int):
    import keras

    def on_epoch_end(epoch: int, logs: dict | None) -> None:
        logs = logs or {}
        parts = [f"epoch {epoch + 1:3d}/{epochs}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            if key in logs:
                parts.append(f"{key} {float(logs[key]):.4g}")
        progress("  ".join(parts))

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train(
    features: Mapping[str, np.ndarray],
    emotions: Sequence[str],
    speakers: Sequence[str],
    split: Split,
    labels: LabelSet,
    feature_spec_hash: str,
    config: TrainConfig = TrainConfig(),
    utterance_ids: Sequence[str] | None = None,
    augmented: tuple[Mapping[str, np.ndarray], Sequence[str], Sequence[str]] | None = None,
    progress: Callable[[str], None] | None = _stderr,
    feature_spec: Mapping[str, Any] | None = None,
) -> TrainedModel:
    """Train on ``split.train``, early-stop on ``split.val`` (without validation rows: ``config.epochs``
    with a cosine learning-rate decay); ``split.test`` is never touched.

    ``features``: family -> ``(n, rows, frames)`` for all n utterances; ``emotions`` and
    ``speakers``: length n. ``augmented``: optional (features, emotions, speakers) of
    augmented copies of *training* clips, added to the training part only.
    ``progress`` gets one line per epoch (None: silent). ``feature_spec``: the spec as a dict,
    kept with the model so prediction can re-extract features the same way.
    """
    import keras

    from ser_pipeline.device import current_plan, dtype_policy

    seed_everything(config.seed)
    x_all = model_inputs(features, config.input_kind)
    emotions = np.asarray([str(e) for e in emotions], dtype=object)
    speakers = np.asarray([str(s) for s in speakers], dtype=object)
    if not (len(x_all) == len(emotions) == len(speakers)):
        raise ValueError(f"{len(x_all)} feature rows, {len(emotions)} emotions, {len(speakers)} speakers")
    y_all = np.asarray(labels.indices(emotions), dtype=np.int64)
    overlap = set(speakers[split.train]) & set(speakers[split.test]) if split.kind == "speaker" else set()
    if overlap:
        raise ValueError(f"speaker split is not speaker-disjoint: {sorted(overlap)} in train and test")

    shrink = config.speaker_prior_utterances > 0
    normalizer = fit_normalizer(x_all[split.train], mode=config.normalization,  # type: ignore[arg-type]
                                min_speaker_utterances=1 if shrink else 5, prior_utterances=config.speaker_prior_utterances,
                                clip_z=config.clip_z)
    x_train = normalizer.transform(x_all[split.train], speakers[split.train])
    y_train = y_all[split.train]
    if augmented is not None:
        aug_feats, aug_emotions, aug_speakers = augmented
        x_aug = model_inputs(aug_feats, config.input_kind)
        if config.heard_group_max > 0 and normalizer.mode == "speaker":
            rng = np.random.default_rng([config.seed, 41])
            x_aug = normalizer.transform_as_heard(x_aug, list(aug_speakers), list(aug_emotions), config.heard_group_max, rng)
        else:
            x_aug = normalizer.transform(x_aug, list(aug_speakers))
        x_train = np.concatenate([x_train, x_aug])
        y_train = np.concatenate([y_train, np.asarray(labels.indices(aug_emotions), dtype=np.int64)])
    n_classes = len(labels)
    validation = None
    if len(split.val):
        x_val = normalizer.transform(x_all[split.val], speakers[split.val])
        validation = (x_val[..., None], keras.utils.to_categorical(y_all[split.val], n_classes))

    plan = current_plan()  # a GPU when the backend sees one; mixed precision where it is safe
    batch_size = plan.train_batch(config.batch_size)
    with dtype_policy(plan):
        model = build_model(config.architecture, (*x_all.shape[1:], 1), n_classes)
    if validation is not None:
        learning_rate: Any = config.learning_rate
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.reduce_lr_factor, patience=config.reduce_lr_patience, min_lr=1e-5),
        ]
    else:  # nothing to stop on: a fixed budget whose step size decays to zero
        steps = config.epochs * int(np.ceil(len(x_train) / batch_size))
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=max(steps, 1))
        callbacks = []
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    if progress is not None:
        callbacks.append(_progress_callback(progress, config.epochs))
    history = model.fit(
        x_train[..., None],
        keras.utils.to_categorical(y_train, n_classes),
        batch_size=batch_size,
        epochs=config.epochs,
        validation_data=validation,
        class_weight=_class_weights(y_train, n_classes) if config.class_weights else None,
        callbacks=callbacks,
        shuffle=True,
        verbose=0,
    )
    ids = utterance_ids if utterance_ids is not None else [f"row{i}" for i in range(len(x_all))]
    train_ids = [str(ids[i]) for i in split.train]
    return TrainedModel(
        model=model,
        normalizer=normalizer,
        labels=labels,
        feature_spec_hash=feature_spec_hash,
        input_kind=config.input_kind,
        architecture=config.architecture,
        fingerprint=training_fingerprint(train_ids, emotions[split.train]),
        split_speakers=split.as_dict(),
        config=config,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        split_kind=split.kind,
        feature_spec=feature_spec,
    )
