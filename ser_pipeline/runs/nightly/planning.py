"""Step 3 of the nightly run: hash and segment every session recording (cached per object
version, so unchanged recordings are not re-read), skip the utterances the warehouse already
holds for this model, and batch the rest in whole sessions."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ser_pipeline.archive.segmentation import Utterance, VadConfig, segment_recording
from ser_pipeline.errors import AudioDecodeError
from ser_pipeline.runs.nightly.records import Batch, Plan, PlannedUtterance, Quarantined, RecordingWarning, Stopwatch
from ser_pipeline.settings import Settings

HASH_CHUNK_BYTES = 4 * 1024 * 1024
RECORDING_CACHE_DIR = "_recordings"  # under the feature store: content hash and utterances per unchanged recording


def recording_hash(url: str, settings: Settings, attempts: int = 4, first_delay_s: float = 0.5) -> str:
    """sha256 of a recording, streamed in 4 MiB chunks; transient read errors are retried with
    exponential backoff (``attempts`` tries in all). A missing file is not retried."""
    from ser_pipeline.storage import open_url

    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            digest = hashlib.sha256()
            with open_url(url, "rb", settings) as fh:
                while chunk := fh.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
            return digest.hexdigest()
        except FileNotFoundError:
            raise
        except OSError:
            if attempt == attempts:
                raise
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _labelled_ids(settings: Settings, model_version: str, session_ids: Sequence[str], transcriber: str | None = None) -> set[str]:
    """Utterance ids of these sessions that already have this model's prediction (and, when
    ``transcriber`` names a transcription model, its transcript too)."""
    from ser_pipeline import warehouse

    if not session_ids or not settings.warehouse_path.exists():
        return set()
    transcribed = (" AND p.utterance_id IN (SELECT utterance_id FROM transcripts WHERE model = $transcriber)"
                   if transcriber else "")
    frame = warehouse.run_query(
        settings.warehouse_path,
        "SELECT p.utterance_id FROM predictions p JOIN utterances u USING (utterance_id) "
        "WHERE p.model_version = $version AND u.session_id IN (SELECT unnest($sessions))" + transcribed,
        {"version": model_version, "sessions": list(session_ids), **({"transcriber": transcriber} if transcriber else {})},
        settings=settings,
    )
    return set(frame["utterance_id"])


def _session_utterances(session: Any, settings: Settings, vad: VadConfig) -> tuple[list[Utterance], dict[str, Any] | None]:
    """The session's utterances, and what its container gets wrong (``kind``, ``message``,
    ``declared_s``, ``found_s``) or None. The header is read first, so a broken recording is
    caught once here (not once per turn) and turns are clipped to what decodes: a WAV cut off
    at 1 h 50 of a declared 2 h keeps 1 h 50 of utterances."""
    from ser_pipeline.audio.decode import probe_audio

    info = probe_audio(session.audio_url, settings, allow_truncated=True)
    utterances = segment_recording(session.audio_url, session.session_id, session.turns or None,
                                   duration_s=info.duration_s, config=vad, settings=settings, allow_truncated=True)
    if not session.turns and len(session.participant_ids) == 1:
        # One participant and no turns: every voiced span is theirs.
        utterances = [replace(u, participant_id=session.participant_ids[0]) for u in utterances]
    defect = None
    if info.defect is not None:
        defect = {"kind": info.defect.kind, "message": info.defect.message,
                  "declared_s": round(info.declared_s, 3), "found_s": round(info.duration_s, 3)}
    return utterances, defect


def _recording_cache_url(settings: Settings, audio_url: str) -> str:
    from ser_pipeline.storage import join

    return join(settings.feature_store_url, RECORDING_CACHE_DIR, hashlib.sha256(audio_url.encode()).hexdigest()[:32] + ".json")


def _recording_cache_key(session: Any, settings: Settings, vad: VadConfig) -> str | None:
    """What decides a recording's hash and utterances: the object's size and ETag (S3) or
    modification time (local), the sidecar turns, the participants and the VAD settings.
    None when the object store gives neither an ETag nor a modification time."""
    import json
    from dataclasses import asdict

    from ser_pipeline.storage import filesystem

    fs, path = filesystem(session.audio_url, settings)
    info = fs.info(path)
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    if version is None:
        return None
    key = {
        "url": session.audio_url, "size": info.get("size"), "version": str(version),
        "turns": [asdict(t) for t in session.turns], "participants": list(session.participant_ids), "vad": asdict(vad),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _hash_and_segment(session: Any, settings: Settings, vad: VadConfig) -> tuple[str, list[Utterance], dict[str, Any] | None]:
    """The recording's content hash, utterances and container defect (see
    :func:`_session_utterances`), from the recording cache when the object is
    unchanged since it was last read (so a nightly run does not re-read the whole archive), else
    computed (streamed) and cached. The cache lives under ``<feature store>/_recordings/``."""
    import json

    from ser_pipeline.storage import read_bytes, write_bytes_atomic

    cache_url = _recording_cache_url(settings, session.audio_url)
    key = _recording_cache_key(session, settings, vad)
    if key is not None:
        try:
            cached = json.loads(read_bytes(cache_url, settings))
            if cached.get("key") == key:
                return (cached["content_hash"], [Utterance(session.session_id, *u) for u in cached["utterances"]],
                        cached.get("defect"))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            pass
    digest = recording_hash(session.audio_url, settings)
    utterances, defect = _session_utterances(session, settings, vad)
    if key is not None:
        entry = {"key": key, "content_hash": digest, "defect": defect,
                 "utterances": [[u.participant_id, u.start_s, u.end_s, u.question] for u in utterances]}
        try:
            write_bytes_atomic(cache_url, json.dumps(entry).encode(), settings)
        except OSError:
            pass  # only a cache: a full or read-only store must not set the recording aside
    return digest, utterances, defect


def plan(settings: Settings, surveys: Sequence[Any], model_version: str, vad: VadConfig | None = None,
         transcriber: str | None = None) -> Plan:
    """Hash and segment every session recording; batch the utterances not yet labelled by
    ``model_version`` (or, when ``transcriber`` names the transcription model, not yet
    transcribed by it: those are labelled again, which adds no prediction twice), whole
    sessions per batch, at most ``settings.batch_size`` utterances; longer sessions in parts."""
    clock = Stopwatch()
    vad = vad or VadConfig()
    sessions = [(survey, s) for survey in surveys for s in survey.sessions]
    done = _labelled_ids(settings, model_version, [s.session_id for _, s in sessions], transcriber)
    quarantined: list[Quarantined] = []
    warnings: list[RecordingWarning] = []
    pending_by_session: list[list[PlannedUtterance]] = []
    skipped = total = 0
    for survey, session in sessions:
        try:
            digest, utterances, defect = _hash_and_segment(session, settings, vad)
        except (AudioDecodeError, OSError) as exc:
            reason = exc.reason if isinstance(exc, AudioDecodeError) else f"{type(exc).__name__}: {exc}"
            quarantined.append(Quarantined("audio", session.audio_url, reason))
            continue
        if not utterances:
            quarantined.append(Quarantined("audio", session.audio_url, "no speech found (no turns and VAD found no utterance)", digest))
            continue
        planned = [
            PlannedUtterance(u.utterance_id(digest), survey.survey_id, session.session_id, u.participant_id,
                             u.start_s, u.end_s, u.question, session.audio_url, session.language)
            for u in utterances
        ]
        total += len(planned)
        pending = [p for p in planned if p.utterance_id not in done]
        if not pending:
            skipped += 1
            continue
        if defect is not None:
            warnings.append(RecordingWarning(defect["kind"], session.audio_url, session.session_id, defect["message"],
                                             defect["declared_s"], defect["found_s"], digest))
        pending_by_session.append(pending)
    batches, current = [], []
    size = max(1, settings.batch_size)
    for pending in pending_by_session:
        # A session longer than a batch (a two-hour recording) is cut into parts of at most
        # ``batch_size`` utterances, so memory is bounded by the batch size, not by the
        # recording's length; the context filter restarts at each part.
        for part in (pending[i : i + size] for i in range(0, len(pending), size)):
            if current and len(current) + len(part) > size:
                batches.append(Batch(len(batches), tuple(current)))
                current = []
            current.extend(part)
    if current:
        batches.append(Batch(len(batches), tuple(current)))
    n_pending = sum(len(b.utterances) for b in batches)
    return Plan(tuple(batches), len(sessions), skipped, total, n_pending, tuple(quarantined), clock.elapsed, tuple(warnings))
