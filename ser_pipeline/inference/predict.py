"""Class probabilities from a trained model, with the feature-spec check and window pooling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.errors import FeatureSpecMismatch
from ser_pipeline.labels import EMOTIONS


def spec_of(trained: Any, settings: Any) -> Any:
    """The FeatureSpec ``trained`` was trained on: its stored spec, or for models saved
    before specs were stored, the spec at ``settings.sample_rate`` for its input kind. An
    embeddings spec comes with its encoder's weights located on this machine, and only when
    ``settings.encoder`` names the encoder the model heard."""
    from ser_pipeline.features.spec import FeatureSpec
    from ser_pipeline.training.networks import feature_spec_for

    if trained.feature_spec:
        spec = FeatureSpec.from_dict(dict(trained.feature_spec))
        if spec.output == "embeddings":
            from ser_pipeline.features.encoder import located_spec

            return located_spec(spec, settings)
        return spec
    return feature_spec_for(trained.input_kind, FeatureSpec.from_settings(settings))


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


def _padded_size(n: int, batch_size: int) -> int:
    """The batch shape ``n`` rows are run at: ``batch_size``, or the next power of two (>= 8) below it."""
    size = 8
    while size < n and size < batch_size:
        size *= 2
    return min(size, batch_size)


def predict_batches(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``model`` on ``x`` ``(n, ...)`` as float32 ``(n, K)``, in fixed-shape batches.

    Every call uses ``model.predict_on_batch`` on a batch of ``batch_size`` rows (the last
    one zero-padded to the next power of two), so the backend compiles the forward pass for
    a handful of shapes once and reuses it: no tf.data pipeline per call (what
    ``model.predict`` builds) and no retracing for every odd batch length.
    """
    out = []
    for start in range(0, len(x), batch_size):
        part = x[start : start + batch_size]
        size = _padded_size(len(part), batch_size)
        if size != len(part):
            part = np.concatenate([part, np.zeros((size - len(part), *part.shape[1:]), dtype=part.dtype)])
        out.append(np.asarray(model.predict_on_batch(part), dtype=np.float32)[: min(batch_size, len(x) - start)])
    if not out:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(out)


def predict_proba(
    trained: Any,
    features: Mapping[str, np.ndarray],
    speakers: Sequence[str | None] | None,
    spec: Any,
    utterance_ids: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Probabilities ``(n, K)`` in ``trained.labels`` order.

    ``features``: family -> ``(n_windows, rows, frames)``, made with ``spec`` (a FeatureSpec
    or its hash); a model trained on another spec is refused with FeatureSpecMismatch.
    ``speakers`` (length n_windows; None entries allowed) feed per-speaker normalisation.
    ``batch_size`` None: from the device (``device.current_plan()``: 256 on a CPU, more on a
    GPU with free memory). The model's calibration temperature is applied to each window. With ``utterance_ids`` (length n_windows) the windows of each utterance are averaged
    and one row per utterance is returned, in order of first appearance.
    """
    from ser_pipeline.training.fit import model_inputs, tempered

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
    if batch_size is None:
        from ser_pipeline.device import current_plan

        batch_size = current_plan().predict_batch_size
    proba = tempered(predict_batches(trained.model, np.asarray(x[..., None], dtype=np.float32), batch_size),
                     getattr(trained, "temperature", 1.0))
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
