"""A batch's features to predictions: the model on every window (loaded once per process),
window probabilities pooled per utterance, the session context filter, the GX ``predictions``
suite; and the two ways a run labels its batches (here in order, or one task per batch).

Three labelling functions, by what they start from:

- :func:`label_batch`: one batch from its audio (extract its features, then
  :func:`label_extracted_batch`); the unit a task runner spreads over workers;
- :func:`label_extracted_batch`: one batch whose features are already extracted (store,
  validate, predict, context, validate);
- :func:`label_batches_in_order`: every batch of a run, one after the other in this process,
  the next one's features extracted while the current one is labelled.

Each takes the model as a :data:`ModelOrVersion`: a loaded model, or a registry version
loaded once per process (:func:`model_for`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ser_pipeline.inference.predict import spec_of
from ser_pipeline.runs.nightly.batch_features import extract_batch, store_batch_features, validate_batch_features
from ser_pipeline.runs.nightly.records import Batch, BatchFeatures, BatchPredictions, LabelledBatch, Stopwatch
from ser_pipeline.settings import Settings
from ser_pipeline.training.fit import TrainedModel
from ser_pipeline.validation import ValidationResult

# What the labelling functions take as the model: a loaded model, or a registry version
# ("champion" or a version id) loaded once per process by :func:`model_for`.
ModelOrVersion: TypeAlias = TrainedModel | str


def load_trained_model(settings: Settings, which: str = "champion") -> TrainedModel:
    """The model to label with: ``which`` is ``"champion"`` or a registry version."""
    from ser_pipeline.training.registry import load_model

    return load_model(settings.registry_url, which, settings=settings)


def predict_batch(trained: TrainedModel, features: BatchFeatures, batch_size: int | None = None) -> BatchPredictions:
    """The model on every window; window probabilities averaged per utterance (in the order
    utterances first appear in ``features.keys``)."""
    from ser_pipeline.inference.predict import pool_windows, predict_proba

    clock = Stopwatch()
    labels = tuple(trained.labels.labels)
    version = str(trained.version or "unversioned")
    keys = features.keys
    if keys.empty:
        return BatchPredictions(_empty_predictions(), np.zeros((0, len(labels)), np.float32), labels, version, clock.elapsed)
    speakers = [None if s == "unknown" else s for s in keys["speaker"]]
    window_proba = predict_proba(trained, features.feats, speakers, features.spec, batch_size=batch_size)
    ids, proba = pool_windows(window_proba, list(keys["utterance_id"]))
    frame = pd.DataFrame({"utterance_id": ids})
    return BatchPredictions(frame, proba, labels, version, clock.elapsed)


def _empty_predictions() -> pd.DataFrame:
    from ser_pipeline.warehouse.loads import PREDICTION_COLUMNS

    return pd.DataFrame(columns=list(PREDICTION_COLUMNS))


def apply_context(predictions: BatchPredictions, batch: Batch, stay: float) -> BatchPredictions:
    """Forward-filter each speaker's utterances within a session in time order
    (``context.forward_filter`` with a sticky transition matrix: ``stay`` = chance a person's
    emotion persists to their next utterance), and build the warehouse's prediction frame with
    both the raw and the context columns.

    The chain follows one participant, not the session's turn order: in a focus group the
    speakers alternate, and it is a person's state that persists, not the room's. Utterances
    without a known participant form one chain per session.
    """
    from ser_pipeline.inference.context import filter_sessions, sticky_transitions
    from ser_pipeline.inference.predict import predictions_frame

    clock = Stopwatch()
    if predictions.frame.empty:
        return predictions
    by_id = {u.utterance_id: u for u in batch.utterances}
    ids = list(predictions.frame["utterance_id"])
    order = sorted(range(len(ids)), key=lambda i: (by_id[ids[i]].session_id, by_id[ids[i]].start_s, by_id[ids[i]].end_s))
    ids = [ids[i] for i in order]
    proba = predictions.proba[order]
    chains = [f"{by_id[i].session_id}\x1f{by_id[i].participant_id or ''}" for i in ids]
    context = filter_sessions(proba, chains, sticky_transitions(len(predictions.labels), stay))
    frame = predictions_frame(ids, proba, predictions.labels, predictions.model_version, context)
    return BatchPredictions(frame, proba, predictions.labels, predictions.model_version, predictions.elapsed_s + clock.elapsed)


def validate_batch_predictions(predictions: BatchPredictions) -> ValidationResult:
    from ser_pipeline.validation import validate_predictions

    return validate_predictions(predictions.frame, labels=predictions.labels)


_MODELS: dict[tuple[str, str], TrainedModel] = {}
_MODELS_LOCK = threading.Lock()


def model_for(settings: Settings, model_or_version: ModelOrVersion) -> TrainedModel:
    """``model_or_version`` itself when it is a loaded model; for a registry version (a
    string), the model loaded once per process (a Dask worker labels many batches with the
    same model)."""
    if not isinstance(model_or_version, str):
        return model_or_version
    key = (settings.registry_url, model_or_version)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            _MODELS[key] = load_trained_model(settings, model_or_version)
        return _MODELS[key]


def label_batch(settings: Settings, batch: Batch, model_or_version: ModelOrVersion) -> LabelledBatch:
    """One batch from its audio: decode and extract its features, then
    :func:`label_extracted_batch` (store, validate, predict, add context, validate; no
    warehouse write).

    ``model_or_version`` is a loaded model or a registry version (loaded once per process).
    This is the unit of work the flow spreads over its task runner; loading stays with the
    flow, one writer at a time.

    Once the features are extracted, three things run side by side: the feature-store write
    and the model (both mostly outside the GIL, on two threads) and the GX features suite
    (Python, here). Predictions of a batch whose features fail the suite are discarded, so
    the outcome is the same as validating first; the store write is always finished before
    this returns, so nothing is loaded whose features are not stored.
    """
    trained = model_for(settings, model_or_version)
    return label_extracted_batch(settings, extract_batch(settings, batch, spec_of(trained, settings)), trained)


def label_extracted_batch(settings: Settings, features: BatchFeatures, model_or_version: ModelOrVersion) -> LabelledBatch:
    """One batch whose features are already extracted (:func:`extract_batch`): the rest of
    :func:`label_batch`, that is store, validate, predict, add context and validate (no
    warehouse write)."""
    from concurrent.futures import ThreadPoolExecutor

    trained = model_for(settings, model_or_version)
    batch = features.batch
    target = f"batch {batch.index}: sessions {', '.join(batch.sessions)}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        stored = pool.submit(store_batch_features, settings, features)
        predicted = pool.submit(predict_batch, trained, features)
        clock = Stopwatch()
        checked = validate_batch_features(features)
        validate_s = clock.elapsed
        stored_timings, quarantined = stored.result().timings, features.quarantined
        predictions = predicted.result()
    del features, stored  # the windows' features are in the store; free them before the next batch
    timings = {**stored_timings, "validate": validate_s}
    validations = [(target, checked)]
    if not checked.success:
        return LabelledBatch(batch, None, tuple(validations), quarantined, timings)
    timings["predict"] = predictions.elapsed_s
    with_context = apply_context(predictions, batch, settings.context_stay)
    timings["context"] = with_context.elapsed_s - predictions.elapsed_s
    clock = Stopwatch()
    checked = validate_batch_predictions(with_context)
    timings["validate"] += clock.elapsed
    validations.append((target, checked))
    transcripts = None
    if checked.success and settings.transcribe:
        transcripts = transcribe_labelled(settings, batch, with_context.frame["utterance_id"])
        timings.update({f"transcribe: {stage}": s for stage, s in transcripts.timings.items()})
    return LabelledBatch(batch, with_context, tuple(validations), quarantined, timings, transcripts)


def transcription_model(settings: Settings) -> str:
    """``transcripts.model`` of the transcripts this run writes (``name@sha256[:12]``), the
    encoder's weights assembled and checked now, before any batch."""
    from ser_pipeline.transcripts.whisper import transcriber_for

    return transcriber_for(settings.encoder, settings.home).model_id


def transcribe_labelled(settings: Settings, batch: Batch, utterance_ids: Iterable[str]) -> Any:
    """The transcripts of the batch's labelled utterances, by ``settings.encoder``'s Whisper model."""
    from ser_pipeline.transcripts.batch import transcribe_batch
    from ser_pipeline.transcripts.whisper import transcriber_for

    return transcribe_batch(settings, batch, transcriber_for(settings.encoder, settings.home), utterance_ids)


# label_batches(settings, batches, model_or_version) -> the LabelledBatch of each batch, in any order.
LabelBatches = Callable[[Settings, Sequence[Batch], ModelOrVersion], Iterable[LabelledBatch]]


def label_batches_in_order(settings: Settings, batches: Sequence[Batch], model_or_version: ModelOrVersion) -> Iterator[LabelledBatch]:
    """Every batch, in order in this process, lazily: the next batch's audio decoded and
    featurised (:func:`extract_batch`) on a background thread while this one is labelled
    (:func:`label_extracted_batch`) and loaded by the caller.

    Decoding and features are numeric work outside the GIL, the suites and the loads mostly
    Python, so the two overlap on two cores. At most two batches' features are in memory.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not batches:
        return
    trained = model_for(settings, model_or_version)
    spec = spec_of(trained, settings)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract") as prefetch:
        upcoming = prefetch.submit(extract_batch, settings, batches[0], spec)
        for i in range(len(batches)):
            features = upcoming.result()
            if i + 1 < len(batches):
                upcoming = prefetch.submit(extract_batch, settings, batches[i + 1], spec)
            yield label_extracted_batch(settings, features, trained)
            del features
