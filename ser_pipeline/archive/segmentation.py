"""Cutting long session recordings into utterances.

Two sources of utterance boundaries, in order of preference:

1. **Turns given by the caller** (a ``<session>.turns.csv`` or ``.rttm`` sidecar read by
   ``manifest.py``): each turn becomes an utterance of its participant; turns longer than
   ``max_s`` are split into equal parts, turns shorter than ``min_s`` are dropped.
2. **Voice-activity detection on frame energy** when there are no turns: a frame is voiced
   when its level rises a margin above the recording's own noise floor (a low percentile of
   its frame levels), so a quiet room and a noisy one are treated alike. A hangover keeps
   short pauses inside words from splitting an utterance, segments shorter than ``min_s``
   are dropped, and segments longer than ``max_s`` are split at their quietest frame.

VAD on a file streams it with :func:`ser_pipeline.audio.decode.iter_audio_blocks` and keeps only
one level per 20 ms frame (about 180 kB per hour of audio), so memory stays bounded whatever
the recording's length. It returns time spans; the caller reads each utterance's audio with
``load_audio(src, offset_s=start_s, duration_s=end_s - start_s)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ser_pipeline.settings import Settings

# Levels below this (dBFS) are digital silence whatever the floor; keeps log() finite too.
_SILENCE_DB = -100.0


@dataclass(frozen=True)
class VadConfig:
    """Knobs of the energy voice-activity detector (seconds and decibels).

    ``margin_db`` is how far above the noise floor a frame must be to count as voiced; the
    threshold is capped halfway between the floor and the loud level, so recordings with
    little contrast still split at their pauses. ``min_level_db`` stops a recording of pure
    room noise from yielding "speech". A recording whose levels span less than
    ``min_contrast_db`` has no pauses to learn from and is judged on ``min_level_db`` alone.
    """

    frame_s: float = 0.02
    margin_db: float = 12.0
    floor_percentile: float = 10.0
    loud_percentile: float = 95.0
    min_level_db: float = -65.0
    min_contrast_db: float = 6.0
    hangover_s: float = 0.25
    min_s: float = 0.5
    max_s: float = 8.0


@dataclass(frozen=True)
class Utterance:
    """One utterance of one participant in one session recording, in seconds from its start.

    ``participant_id`` and ``question`` are ``None`` when the span came from VAD, which does
    not know who speaks.
    """

    session_id: str
    participant_id: str | None
    start_s: float
    end_s: float
    question: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def start_ms(self) -> int:
        return int(round(self.start_s * 1000))

    @property
    def end_ms(self) -> int:
        return int(round(self.end_s * 1000))

    def utterance_id(self, recording_hash: str) -> str:
        """The utterance's identifier (and content hash): fixed by the recording and the span."""
        return utterance_id(recording_hash, self.start_s, self.end_s)


def utterance_id(recording_hash: str, start_s: float, end_s: float) -> str:
    """``sha256(f"{recording_hash}:{start_ms}:{end_ms}")[:32]`` (see ARCHITECTURE.md)."""
    key = f"{recording_hash}:{int(round(start_s * 1000))}:{int(round(end_s * 1000))}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


# -- frame levels --------------------------------------------------------------------------


def frame_levels_db(samples: np.ndarray, sample_rate: int, frame_s: float = 0.02) -> np.ndarray:
    """Level of each non-overlapping ``frame_s`` frame in dBFS, shape ``(n_frames,)``.

    The level is that of the frame's AC part (its variance): a recording with a DC offset
    (a miscalibrated converter) would otherwise look voiced from end to end. Removing the
    frame mean drops only what lies below ~1/frame_s (50 Hz), under any voice. A trailing
    partial frame is dropped.
    """
    frame = max(1, int(round(frame_s * sample_rate)))
    n = len(samples) // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    blocks = np.asarray(samples[: n * frame], dtype=np.float64).reshape(n, frame)
    power = np.var(blocks, axis=1)
    return (10.0 * np.log10(np.maximum(power, 10 ** (_SILENCE_DB / 10)))).astype(np.float32)


def stream_frame_levels_db(blocks: Iterable[np.ndarray], sample_rate: int, frame_s: float = 0.02) -> np.ndarray:
    """:func:`frame_levels_db` over a stream of sample blocks of any sizes.

    Samples left over at the end of a block are carried into the next, so the frames are the
    same as those of the whole signal.
    """
    frame = max(1, int(round(frame_s * sample_rate)))
    levels: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.float32)
    for block in blocks:
        data = np.concatenate([carry, np.asarray(block, dtype=np.float32)]) if carry.size else np.asarray(block, dtype=np.float32)
        usable = (len(data) // frame) * frame
        if usable:
            levels.append(frame_levels_db(data[:usable], sample_rate, frame_s))
        carry = data[usable:].copy()
    return np.concatenate(levels) if levels else np.zeros(0, dtype=np.float32)


# -- voice activity --------------------------------------------------------------------------


def voiced_threshold_db(levels_db: np.ndarray, config: VadConfig = VadConfig()) -> float:
    """The level (dBFS) above which a frame counts as voiced, adapted to this recording."""
    if levels_db.size == 0:
        return float("inf")
    floor = float(np.percentile(levels_db, config.floor_percentile))
    loud = float(np.percentile(levels_db, config.loud_percentile))
    if loud - floor < config.min_contrast_db:
        # No pauses to learn a floor from: the whole recording is at one level, and it is
        # voiced exactly when that level is above the absolute minimum.
        threshold = floor - config.min_contrast_db
    else:
        threshold = min(floor + config.margin_db, (floor + loud) / 2.0)
    return max(threshold, config.min_level_db)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[a, b)`` where ``mask`` is True."""
    if not mask.any():
        return []
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def _split_long(levels_db: np.ndarray, a: int, b: int, min_frames: int, max_frames: int) -> Iterator[tuple[int, int]]:
    """Split frames ``[a, b)`` into pieces of at most ``max_frames``, cutting at the quietest frame.

    Each cut falls where the signal is lowest between ``min_frames`` and ``max_frames`` after
    the piece's start, so a pause inside a long stretch is preferred to a cut mid-word.
    """
    while b - a > max_frames:
        lo = a + min_frames
        hi = min(a + max_frames, b - min_frames)
        if hi <= lo:
            cut = a + max_frames
        else:
            cut = lo + int(np.argmin(levels_db[lo:hi]))
        yield a, cut
        a = cut
    yield a, b


def spans_from_levels(levels_db: np.ndarray, config: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """Voiced spans ``(start_s, end_s)`` from per-frame levels (see :class:`VadConfig`)."""
    threshold = voiced_threshold_db(levels_db, config)
    voiced = levels_db >= threshold
    hang = int(round(config.hangover_s / config.frame_s))
    if hang > 0 and voiced.any():
        # Extend each voiced frame forward by the hangover: a trailing maximum filter.
        counts = np.convolve(voiced.astype(np.int32), np.ones(hang + 1, dtype=np.int32))
        voiced = counts[: len(levels_db)] > 0
    min_frames = max(1, int(round(config.min_s / config.frame_s)))
    max_frames = max(min_frames + 1, int(round(config.max_s / config.frame_s)))
    spans: list[tuple[float, float]] = []
    for a, b in _runs(voiced):
        # The hangover adds frames after speech ends; trim those that fall below threshold.
        while b > a and levels_db[b - 1] < threshold:
            b -= 1
        for pa, pb in _split_long(levels_db, a, b, min_frames, max_frames):
            if pb - pa >= min_frames:
                spans.append((round(pa * config.frame_s, 3), round(pb * config.frame_s, 3)))
    return spans


def segment_energy(
    samples: np.ndarray,
    sr: int,
    min_s: float = VadConfig.min_s,
    max_s: float = VadConfig.max_s,
    config: VadConfig | None = None,
) -> list[tuple[float, float]]:
    """Voiced spans ``(start_s, end_s)`` of an in-memory mono signal ``(n,)`` at ``sr`` Hz."""
    config = _with_lengths(config, min_s, max_s)
    return spans_from_levels(frame_levels_db(samples, sr, config.frame_s), config)


def segment_file(
    source: str,
    sample_rate: int = 16_000,
    *,
    config: VadConfig | None = None,
    block_s: float = 30.0,
    settings: Settings | None = None,
    allow_truncated: bool = False,
) -> list[tuple[float, float]]:
    """Voiced spans of a recording of any length, read block by block (bounded memory).

    Energy VAD needs no high frequencies, so the file is streamed at 16 kHz by default.
    Raises :class:`~ser_pipeline.errors.AudioDecodeError` when the file cannot be decoded
    (``allow_truncated``: a cut-off WAV or AIFF gives the spans of what it holds).
    """
    from ser_pipeline.audio.decode import iter_audio_blocks

    config = config or VadConfig()
    blocks = iter_audio_blocks(source, sample_rate, block_s=block_s, settings=settings, allow_truncated=allow_truncated)
    return spans_from_levels(stream_frame_levels_db(blocks, sample_rate, config.frame_s), config)


def _with_lengths(config: VadConfig | None, min_s: float, max_s: float) -> VadConfig:
    from dataclasses import replace

    config = config or VadConfig()
    if min_s >= max_s:
        raise ValueError(f"min_s ({min_s}) must be shorter than max_s ({max_s})")
    return replace(config, min_s=min_s, max_s=max_s)


# -- turns from sidecars ----------------------------------------------------------------------


def _turn_rows(turns: Any) -> Iterator[Mapping[str, Any]]:
    if hasattr(turns, "to_dict"):  # a DataFrame
        yield from turns.to_dict("records")
        return
    for turn in turns:
        if isinstance(turn, Mapping):
            yield turn
        else:
            yield {k: getattr(turn, k, None) for k in ("start_s", "end_s", "participant_id", "question")}


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def utterances_from_turns(
    session_id: str,
    turns: Any,
    *,
    duration_s: float | None = None,
    min_s: float = VadConfig.min_s,
    max_s: float = VadConfig.max_s,
) -> list[Utterance]:
    """Utterances from speaker turns (a DataFrame or rows with ``start_s, end_s, participant_id,
    question``), sorted by start.

    Turns are clipped to the recording's ``duration_s`` when given; a turn longer than
    ``max_s`` is split into the fewest equal parts no longer than ``max_s`` (a turn has no
    pause information, and equal parts keep every part usable); parts shorter than ``min_s``
    are dropped.
    """
    out: list[Utterance] = []
    for row in _turn_rows(turns):
        start, end = float(row["start_s"]), float(row["end_s"])
        if duration_s is not None:
            end = min(end, duration_s)
        start = max(start, 0.0)
        length = end - start
        if not np.isfinite(length) or length < min_s:
            continue
        parts = int(np.ceil(length / max_s - 1e-9))
        step = length / parts
        for k in range(parts):
            a = round(start + k * step, 3)
            b = round(end if k == parts - 1 else start + (k + 1) * step, 3)
            if b - a >= min_s - 1e-9:
                out.append(Utterance(session_id, _clean(row.get("participant_id")), a, b, _clean(row.get("question"))))
    out.sort(key=lambda u: (u.start_s, u.end_s, u.participant_id or ""))
    return out


def segment_recording(
    source: str,
    session_id: str,
    turns: Any = None,
    *,
    duration_s: float | None = None,
    config: VadConfig | None = None,
    settings: Settings | None = None,
    allow_truncated: bool = False,
) -> list[Utterance]:
    """The utterances of one session recording: from ``turns`` when given, else from VAD.

    ``turns`` is what ``manifest.py`` read from the session's sidecar (``None`` or empty when
    there is none); ``duration_s`` (what decodes) clips them. ``allow_truncated`` as in
    :func:`ser_pipeline.audio.decode.load_audio`.
    """
    config = config or VadConfig()
    if turns is not None and len(turns):
        return utterances_from_turns(session_id, turns, duration_s=duration_s, min_s=config.min_s, max_s=config.max_s)
    spans = segment_file(source, config=config, settings=settings, allow_truncated=allow_truncated)
    return [Utterance(session_id, None, a, b, None) for a, b in spans]
