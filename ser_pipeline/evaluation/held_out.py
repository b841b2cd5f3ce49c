"""A model's predictions on held-out rows of a labelled set, and the groups every evaluation
is broken down by. Cross-validation, the training run's test speakers and calibration's
inner folds all score held-out speakers this way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class HeldOut:
    """Utterance-level predictions of one model on some rows of a labelled set."""

    utterances: pd.DataFrame  # one row per utterance: utterance_id, speaker, gender, emotion, corpus, ...
    y: np.ndarray  # (n,) true class indices in the model's label order
    proba: np.ndarray  # (n, K)


def predict_held_out(trained: Any, data: Any, rows: np.ndarray, spec: Any) -> HeldOut:
    """Predict the windows of ``data`` (a ``training.dataset.LabelledSet``) at ``rows`` and
    average them per utterance."""
    from ser_pipeline.inference.predict import predict_proba

    windows = data.windows.iloc[rows].reset_index(drop=True)
    feats = {k: v[rows] for k, v in data.features.items()}
    proba = predict_proba(trained, feats, list(windows.speaker), spec, utterance_ids=list(windows.utterance_id))
    utterances = windows.drop_duplicates("utterance_id").reset_index(drop=True)
    return HeldOut(utterances, np.asarray(trained.labels.indices(utterances.emotion)), proba)


def evaluation_groups(utterances: pd.DataFrame) -> dict[str, pd.Series]:
    """The groups every evaluation is broken down by (bias report): corpus and speaker gender."""
    return {"corpus": utterances.corpus.astype(str), "gender": utterances.gender.fillna("unknown").astype(str)}
