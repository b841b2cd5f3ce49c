"""K-fold cross-validation over speaker groups: the figure to choose models by.

A single two-speaker test split swings by several UAR points with the speakers drawn, so
model choices are made on K folds where every speaker is held out exactly once and the
held-out predictions of all folds are pooled into one evaluation. Within each fold the
remaining speakers are split again into training and validation speakers (validation drives
early stopping), so no fold ever sees its held-out voices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.evaluation.held_out import HeldOut, evaluation_groups, predict_held_out
from ser_pipeline.training.splits import speaker_kfold
from ser_pipeline.training.fit import TrainConfig, TrainedModel


@dataclass(frozen=True)
class Fold:
    index: int
    train_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]
    test_speakers: tuple[str, ...]
    uar: float
    accuracy: float
    epochs: int


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[Fold, ...]
    held_out: HeldOut  # every utterance once, predicted by the fold that held its speaker out
    metrics: dict[str, Any]  # ``evaluation.evaluate`` over the pooled held-out predictions


def cross_validate(
    training_set: Any,
    config: TrainConfig,
    k: int = 4,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    settings: Any = None,
) -> CrossValidation:
    """Train ``k`` models (``retraining.fit``, corrupted copies and all), each with one group
    of speakers held out, and pool their predictions.

    ``training_set``: a ``retraining.TrainingSet``. The fold decides the test speakers; the
    rest are split by ``config.validation_share``. ``progress`` gets a line per fold (and the
    training's per-epoch lines).
    """
    from ser_pipeline.evaluation.metrics import evaluate
    from ser_pipeline.runs.retrain import fit, make_split

    data = training_set.data
    utterances = data.utterances
    folds: list[Fold] = []
    parts: list[HeldOut] = []
    audio_cache: dict[str, np.ndarray] = {}
    for index, (_, held_rows) in enumerate(speaker_kfold(utterances, k=k, seed=seed)):
        held_speakers = sorted(set(utterances.speaker.iloc[held_rows].astype(str)))
        split_w = make_split(training_set, "speaker", seed, held_speakers, config.validation_share)
        if progress is not None:
            progress(f"fold {index + 1}/{k}: held out {', '.join(held_speakers)}; validation {', '.join(split_w.val_speakers)}")
        trained = fit(training_set, split_w, config, progress, audio_cache, settings)
        held = predict_held_out(trained, data, split_w.test, training_set.spec)
        fold_metrics = evaluate(held.y, held.proba, trained.labels.labels)
        folds.append(Fold(index, split_w.train_speakers, split_w.val_speakers, split_w.test_speakers,
                          uar=float(fold_metrics["uar"]), accuracy=float(fold_metrics["accuracy"]),
                          epochs=len(trained.history.get("loss", []))))
        parts.append(held)
    pooled = HeldOut(pd.concat([p.utterances for p in parts], ignore_index=True),
                     np.concatenate([p.y for p in parts]), np.concatenate([p.proba for p in parts]))
    metrics = evaluate(pooled.y, pooled.proba, trained.labels.labels, evaluation_groups(pooled.utterances))
    return CrossValidation(tuple(folds), pooled, metrics)
