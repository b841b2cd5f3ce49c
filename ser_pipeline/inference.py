"""Class probabilities from a trained model, with the feature-spec check and window pooling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import FeatureSpecMismatch
from .labels import EMOTIONS


def _spec_hash(spec: Any) -> str:
    return spec if isinstance(spec, str) else str(spec.hash)


def pool_windows(proba: np.ndarray, utterance_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Mean of the window probabilities of each utterance, in order of first appearance."""
    ids = [str(u) for u in utterance_ids]
    if len(ids) != len(proba):
        raise ValueError(f"{len(ids)} utterance ids for {len(proba)} windows")
    order = list(dict.fromkeys(ids))
    codes = pd.Index(order).get_indexer(ids)
    sums = np.zeros((len(order), proba.shape[1]), dtype=np.float64)
    np.add.at(sums, codes, proba)
    pooled = sums / np.bincount(codes, minlength=len(order))[:, None]
    return order, pooled.astype(np.float32)


def predict_proba(
    trained: Any,
    features: Mapping[str, np.ndarray],
    speakers: Sequence[str | None] | None,
    spec: Any,
    utterance_ids: Sequence[str] | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Probabilities ``(n, K)`` in ``trained.labels`` order.

    ``features``: family -> ``(n_windows, rows, frames)``, made with ``spec`` (a FeatureSpec
    or its hash); a model trained on another spec is refused with FeatureSpecMismatch.
    ``speakers`` (length n_windows; None entries allowed) feed per-speaker normalisation.
    With ``utterance_ids`` (length n_windows) the windows of each utterance are averaged
    and one row per utterance is returned, in order of first appearance.
    """
    from .training import model_inputs

    given = _spec_hash(spec)
    if given != trained.feature_spec_hash:
        raise FeatureSpecMismatch(
            f"model ({trained.architecture}/{trained.input_kind}) was trained on features with spec "
            f"{trained.feature_spec_hash[:12]}, but these features have spec {given[:12]}; "
            "re-extract the features with the model's spec or use a model trained on this one"
        )
    x = model_inputs(features, trained.input_kind)
    if speakers is None:
        speakers = [None] * len(x)
    x = trained.normalizer.transform(x, list(speakers))
    proba = np.asarray(trained.model.predict(x[..., None], batch_size=batch_size, verbose=0), dtype=np.float32)
    if utterance_ids is not None:
        return pool_windows(proba, utterance_ids)[1]
    return proba


def predictions_frame(
    utterance_ids: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    model_version: str,
    context_proba: np.ndarray | None = None,
) -> pd.DataFrame:
    """The warehouse's prediction rows (docs/ARCHITECTURE.md): one probability column per
    unified emotion, NaN for emotions the model does not predict; context columns when given."""
    labels = list(labels)
    proba = np.asarray(proba, dtype=np.float64)
    frame = pd.DataFrame({"utterance_id": [str(u) for u in utterance_ids], "model_version": model_version})
    top = proba.argmax(axis=1)
    frame["label"] = [labels[i] for i in top]
    frame["confidence"] = proba.max(axis=1)
    for emotion in EMOTIONS:
        frame[f"p_{emotion}"] = proba[:, labels.index(emotion)] if emotion in labels else np.nan
    if context_proba is not None:
        ctx = np.asarray(context_proba, dtype=np.float64)
        frame["context_label"] = [labels[i] for i in ctx.argmax(axis=1)]
        frame["context_confidence"] = ctx.max(axis=1)
        for emotion in EMOTIONS:
            frame[f"ctx_p_{emotion}"] = ctx[:, labels.index(emotion)] if emotion in labels else np.nan
    else:
        frame["context_label"] = None
        frame["context_confidence"] = np.nan
        for emotion in EMOTIONS:
            frame[f"ctx_p_{emotion}"] = np.nan
    return frame
