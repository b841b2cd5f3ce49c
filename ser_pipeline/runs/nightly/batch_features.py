"""A batch's audio to features: each recording decoded once per bounded stretch and sliced into
its utterances' windows, every feature family extracted on the worker's threads, then the
windows appended to the feature store and checked by the GX ``features`` suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.errors import AudioDecodeError
from ser_pipeline.runs.nightly.records import Batch, BatchFeatures, PlannedUtterance, Quarantined, Stopwatch
from ser_pipeline.settings import Settings
from ser_pipeline.validation import ValidationResult


def _decode_groups(utterances: Sequence[PlannedUtterance], max_span_s: float) -> list[list[PlannedUtterance]]:
    """The utterances grouped for decoding: same recording, time order, each group's span
    (first start to last end) at most ``max_span_s`` so one decode stays bounded in memory."""
    by_source: dict[str, list[PlannedUtterance]] = {}
    for u in utterances:
        by_source.setdefault(u.source_uri, []).append(u)
    groups: list[list[PlannedUtterance]] = []
    for items in by_source.values():
        current: list[PlannedUtterance] = []
        for u in sorted(items, key=lambda u: (u.start_s, u.end_s)):
            if current and max(u.end_s, max(c.end_s for c in current)) - current[0].start_s > max_span_s:
                groups.append(current)
                current = []
            current.append(u)
        if current:
            groups.append(current)
    return groups


def _decode_group(group: Sequence[PlannedUtterance], settings: Settings, sample_rate: int) -> list[tuple[PlannedUtterance, Any]]:
    """Each utterance's samples (or the error that stopped it), decoding the group's span once.

    When the span cannot be decoded (a truncated or corrupt stretch), each utterance is
    decoded on its own, so only those that touch the bad part fail.
    """
    from ser_pipeline.audio.decode import load_audio

    start = min(u.start_s for u in group)
    end = max(u.end_s for u in group)
    try:
        # 10 ms past the last end: rounding each utterance's own offset and length must never
        # run past the stretch (the file's end still cuts both the same way).
        span = load_audio(group[0].source_uri, sample_rate, offset_s=start, duration_s=end - start + 0.01,
                          settings=settings, allow_truncated=True).samples
    except AudioDecodeError:
        span = None
    out: list[tuple[PlannedUtterance, Any]] = []
    for u in group:
        if span is None:
            try:
                samples = load_audio(u.source_uri, sample_rate, offset_s=u.start_s, duration_s=u.end_s - u.start_s,
                                     settings=settings, allow_truncated=True).samples
            except AudioDecodeError as exc:
                out.append((u, exc))
                continue
        else:
            # Offsets as load_audio would seek them (in whole samples from the file's start).
            first = int(round(start * sample_rate))
            a = int(round(u.start_s * sample_rate)) - first
            b = min(a + int(round((u.end_s - u.start_s) * sample_rate)), len(span))
            samples = span[a:b]
            if b <= a:
                out.append((u, AudioDecodeError(u.source_uri, f"no audio at offset {u.start_s:.3f} s")))
                continue
        out.append((u, samples))
    return out


def _extract_group(group: Sequence[PlannedUtterance], settings: Settings, spec: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray] | None, list[Quarantined], float, float]:
    """One decode group: its key rows, features, quarantined utterances, decode and feature seconds."""
    from ser_pipeline.features.spec import clip_windows
    from ser_pipeline.features.frames import extract_features

    clock = Stopwatch()
    rows: list[dict[str, Any]] = []
    windows: list[np.ndarray] = []
    quarantined: list[Quarantined] = []
    for u, samples in _decode_group(group, settings, spec.sample_rate):
        try:
            if isinstance(samples, Exception):
                raise samples
            # A DC offset (a miscalibrated converter) carries no speech but leaks into every
            # low band; training corpora have none, so it is removed before windowing.
            clips = clip_windows(samples - np.float32(samples.mean(dtype=np.float64)), spec)
        except (AudioDecodeError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, AudioDecodeError) else str(exc)
            quarantined.append(Quarantined("audio", f"{u.source_uri}#t={u.start_s:g},{u.end_s:g}", reason, u.utterance_id))
            continue
        for w, clip in enumerate(clips):
            rows.append({
                "source": u.survey_id, "group": u.session_id,
                "speaker": f"{u.survey_id}:{u.participant_id}" if u.participant_id else "unknown",
                "utterance_id": u.utterance_id, "window": w, "content_hash": u.utterance_id,
                "session_id": u.session_id, "start_s": u.start_s, "end_s": u.end_s,
            })
            windows.append(clip)
    decoded_s = clock.elapsed
    feats = extract_features(windows, spec) if windows else None
    return rows, feats, quarantined, decoded_s, clock.elapsed - decoded_s


def extract_batch(settings: Settings, batch: Batch, spec: Any) -> BatchFeatures:
    """Decode the batch's audio, cut windows and extract every feature family (nothing is
    stored yet: see :func:`store_batch_features`). Utterances that fail to decode are
    quarantined and left out.

    Each recording is decoded (and resampled) once per stretch of at most
    ``settings.decode_span_s`` covering its utterances, sliced, and that stretch's windows
    featurised straight away, so only the features of a batch are held, never its samples.
    Stretches run on ``settings.effective_workers()`` threads (libsndfile, soxr, the FFTs,
    sorts and matrix products release the GIL). ``BatchFeatures.timings`` holds the decode
    and feature seconds summed over the threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ser_pipeline.features.frames import one_blas_thread

    clock = Stopwatch()
    groups = _decode_groups(batch.utterances, settings.decode_span_s)
    rows: list[dict[str, Any]] = []
    parts: list[dict[str, np.ndarray]] = []
    quarantined: list[Quarantined] = []
    timings = {"decode + resample": 0.0, "features": 0.0}
    with one_blas_thread(), ThreadPoolExecutor(max_workers=max(1, min(settings.effective_workers(), len(groups)))) as pool:
        for group_rows, feats, group_quarantined, decode_s, features_s in pool.map(lambda g: _extract_group(g, settings, spec), groups):
            rows.extend(group_rows)
            quarantined.extend(group_quarantined)
            if feats is not None:
                parts.append(feats)
            timings["decode + resample"] += decode_s
            timings["features"] += features_s
    keys = pd.DataFrame(rows, columns=["source", "group", "speaker", "utterance_id", "window", "content_hash", "session_id", "start_s", "end_s"])
    if parts:
        feats = {f: np.concatenate([p[f] for p in parts]) for f in spec.families}
    else:
        feats = {f: np.zeros((0, *shape), np.float32) for f, shape in spec.shapes.items()}
    return BatchFeatures(batch, keys, feats, spec, None, tuple(quarantined), clock.elapsed, timings)


def store_batch_features(settings: Settings, features: BatchFeatures) -> BatchFeatures:
    """Append the batch's windows to the feature store (one file per survey; stored content
    is skipped). The same features, with ``store_file`` and the store's time added."""
    from ser_pipeline.features.store import write_features

    clock = Stopwatch()
    keys, feats = features.keys, features.feats
    store_file = None
    for source in keys["source"].unique():
        mask = (keys["source"] == source).to_numpy()
        store_file = write_features(settings.feature_store_url, keys[mask].reset_index(drop=True),
                                    {f: a[mask] for f, a in feats.items()}, features.spec, settings=settings) or store_file
    return replace(features, store_file=store_file, elapsed_s=features.elapsed_s + clock.elapsed,
                   timings={**features.timings, "feature store": clock.elapsed})


def featurise_batch(settings: Settings, batch: Batch, spec: Any) -> BatchFeatures:
    """:func:`extract_batch` then :func:`store_batch_features`, one after the other."""
    return store_batch_features(settings, extract_batch(settings, batch, spec))


def validate_batch_features(features: BatchFeatures) -> ValidationResult:
    from ser_pipeline.validation import validate_features

    return validate_features(features.keys, features.feats, features.spec)
