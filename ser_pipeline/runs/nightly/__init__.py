"""The nightly labeling run as plain functions: archive in, warehouse rows out.

``flows/nightly.py`` wraps each step below in one Prefect task; :func:`run_nightly` runs the
same steps in order without Prefect, for a notebook or a test. The steps:

1. :func:`discover` -- every survey of the archive: the raw manifest is checked by the GX
   ``manifest`` suite, then read with ``manifest.read_survey`` (participants, sidecar turns).
   A manifest wrong as a whole quarantines its survey; a row wrong only about itself
   quarantines that session, and the others go on; a folder of recordings without a
   manifest is reported. Quarantine makes the run ``partial``, not failed.
2. :func:`load_surveys` -- surveys, sessions and pseudonymised participants into DuckDB.
3. :func:`plan` -- each session recording is hashed (streamed, sha256; cached per
   object version, so unchanged recordings are not re-read every night) and cut into
   utterances: sidecar turns when present, else energy VAD (``segmentation``). An
   utterance's id is fixed by the recording's content hash and its span, so "already done"
   means "the warehouse holds this id's prediction by this model"; those are skipped,
   the rest are grouped into batches of whole sessions (session context needs a session's
   utterances together); a session longer than a batch is cut into parts of at most
   ``batch_size`` utterances, so memory never grows with a recording's length. Unreadable
   recordings are quarantined.
4. per batch, :func:`label_batch` (the unit a task runner spreads over workers):
   :func:`extract_batch` (decode each recording once per stretch and slice the utterances,
   windows, features), then side by side :func:`store_batch_features` (appended to the
   Parquet store), :func:`validate_batch_features` (GX ``features``) and
   :func:`predict_batch` (the model on every window, window probabilities averaged per
   utterance; discarded when the features suite fails), :func:`apply_context` (forward filter along each session),
   :func:`validate_batch_predictions` (GX ``predictions``); then, back in the run, one batch
   at a time, :func:`load_batch` (utterances and predictions, idempotent). A failed suite
   stops that batch's load, is recorded in the warehouse and the report, and the run ends
   failed.
5. :func:`finish` -- the ingest run's status and counts; :func:`render_markdown` -- the
   run's report (the flow publishes it as a Prefect artifact).

Re-running is safe at every point: every loader is keyed, the feature store skips stored
content hashes, and the plan skips what the warehouse already holds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.errors import AudioDecodeError, ManifestError, SerError
from ser_pipeline.inference.predict import spec_of
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.archive.segmentation import Utterance, VadConfig, segment_recording
from ser_pipeline.settings import Settings, get_settings, override
from ser_pipeline.validation import ValidationResult

FLOW_NAME = "label-new-audio"
HASH_CHUNK_BYTES = 4 * 1024 * 1024
# Suites that judge the archive's inputs: their failures set inputs aside (quarantine), they
# do not fail the run as a failed features or predictions suite does.
INPUT_SUITES = frozenset({"manifest"})
RECORDING_CACHE_DIR = "_recordings"  # under the feature store: content hash and utterances per unchanged recording

# step(name, fn) -> the callable to run for that step (identity by default; a Prefect task in flows/).
Step = Callable[[str, Callable[..., Any]], Callable[..., Any]]


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantined:
    """An input the run set aside, and why (mirrors a row of the warehouse's quarantine)."""

    stage: str  # "manifest", "audio", "features", ...
    source: str
    reason: str
    content_hash: str | None = None


@dataclass(frozen=True)
class RecordingWarning:
    """A recording labelled with a caveat (mirrors a row of the warehouse's recording_warnings):
    a WAV cut off mid-way is labelled up to where it decodes, and this says how much was
    declared and found."""

    kind: str  # "truncated", "trailing_bytes" (audio.ContainerDefect.kind)
    source: str
    session_id: str
    message: str
    declared_s: float | None = None
    found_s: float | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found: readable surveys, and what it set aside."""

    surveys: tuple[Any, ...]  # manifest.Survey
    quarantined: tuple[Quarantined, ...] = ()
    validations: tuple[tuple[str, ValidationResult], ...] = ()  # (target, result)
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to label: where its audio is and who speaks."""

    utterance_id: str
    survey_id: str
    session_id: str
    participant_id: str | None
    start_s: float
    end_s: float
    question: str | None
    source_uri: str


@dataclass(frozen=True)
class Batch:
    """Whole sessions' pending utterances, labelled and loaded together."""

    index: int
    utterances: tuple[PlannedUtterance, ...]

    @property
    def sessions(self) -> list[str]:
        return list(dict.fromkeys(u.session_id for u in self.utterances))


@dataclass(frozen=True)
class Plan:
    batches: tuple[Batch, ...]
    recordings_seen: int
    recordings_skipped: int  # every utterance already labelled by this model
    utterances_total: int
    utterances_pending: int
    quarantined: tuple[Quarantined, ...] = ()
    elapsed_s: float = 0.0
    warnings: tuple[RecordingWarning, ...] = ()  # recordings with pending utterances labelled with a caveat


@dataclass(frozen=True)
class BatchFeatures:
    """Windows of a batch: ``keys`` (one row per window) and ``{family: (n, rows, frames)}``."""

    batch: Batch
    keys: pd.DataFrame
    feats: dict[str, np.ndarray]
    spec: Any  # features.FeatureSpec
    store_file: str | None
    quarantined: tuple[Quarantined, ...] = ()
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode + resample, features, feature store


@dataclass(frozen=True)
class BatchPredictions:
    """Per-utterance predictions of a batch in the warehouse's layout (ARCHITECTURE.md)."""

    frame: pd.DataFrame
    proba: np.ndarray  # (n_utterances, K) in ``labels`` order
    labels: tuple[str, ...]
    model_version: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class BatchLoad:
    batch_index: int
    utterances_inserted: int
    predictions_inserted: int
    quarantined: int
    elapsed_s: float = 0.0


@dataclass
class NightlyReport:
    """Everything the run did, for the warehouse's ingest run and the markdown artifact."""

    run_id: str
    model_version: str | None = None
    surveys: int = 0
    sessions: int = 0
    recordings_seen: int = 0
    recordings_skipped: int = 0
    utterances_total: int = 0
    utterances_pending: int = 0
    utterances_loaded: int = 0
    predictions_loaded: int = 0
    batches: int = 0
    batches_failed: int = 0
    emotion_counts: Counter = field(default_factory=Counter)
    quarantined: list[Quarantined] = field(default_factory=list)
    validations: list[tuple[str, ValidationResult]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    abandoned_runs: list[str] = field(default_factory=list)  # earlier runs found dead at the start
    temp_files_removed: int = 0
    warnings: list[RecordingWarning] = field(default_factory=list)  # labelled with a caveat

    @property
    def failed(self) -> bool:
        """A batch not loaded or the run stopped. A failed manifest suite only sets its
        survey or sessions aside (quarantine: the run is ``partial``), like a bad recording."""
        return self.batches_failed > 0 or self.error is not None or any(
            not r.success for _, r in self.validations if r.suite not in INPUT_SUITES)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        return "partial" if self.quarantined or self.warnings else "completed"

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + float(seconds)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "model_version": self.model_version,
            "surveys": self.surveys,
            "sessions": self.sessions,
            "recordings_seen": self.recordings_seen,
            "recordings_skipped": self.recordings_skipped,
            "utterances_pending": self.utterances_pending,
            "utterances_loaded": self.utterances_loaded,
            "predictions_loaded": self.predictions_loaded,
            "batches": self.batches,
            "batches_failed": self.batches_failed,
            "quarantined": len(self.quarantined),
            "warnings": len(self.warnings),
            "abandoned_runs": len(self.abandoned_runs),
            "temp_files_removed": self.temp_files_removed,
            "emotions": dict(self.emotion_counts),
        }


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# -- settings and warehouse -----------------------------------------------------------------------


def run_settings(
    archive_url: str | None = None,
    warehouse: str | None = None,
    batch_size: int | None = None,
    settings: Settings | None = None,
) -> Settings:
    """The settings of one run: ``SER_*`` values with the run's parameters applied."""
    from pathlib import Path

    return override(settings or get_settings(), archive_url=archive_url,
                    warehouse_path=Path(warehouse) if warehouse else None, batch_size=batch_size)


@contextmanager
def _writing(settings: Settings) -> Iterator[Any]:
    from ser_pipeline import warehouse

    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        yield con


@dataclass(frozen=True)
class RunStart:
    run_id: str
    recovery: Any  # run_recovery.Recovery: runs found dead and marked abandoned, temp files removed


def start_run(settings: Settings, flow_run_id: str | None = None, run_id: str | None = None) -> RunStart:
    """Record the start of an ingest run in the warehouse (migrating it first), then clean up
    after runs that were killed mid-way (``run_recovery``)."""
    from ser_pipeline import warehouse
    from ser_pipeline.runs.recovery import recover_abandoned

    with _writing(settings) as con:
        run_id = warehouse.start_ingest_run(con, flow_run_id=flow_run_id, flow_name=FLOW_NAME, run_id=run_id)
        return RunStart(run_id, recover_abandoned(settings, run_id, con))


def record_quarantine(settings: Settings, items: Sequence[Quarantined], run_id: str) -> int:
    """Write set-aside inputs to the warehouse's quarantine table (idempotent per input)."""
    from ser_pipeline import warehouse

    if not items:
        return 0
    rows = [{"stage": q.stage, "source": q.source, "reason": q.reason, "content_hash": q.content_hash} for q in items]
    with _writing(settings) as con:
        return warehouse.quarantine(con, rows, run_id=run_id)


def record_warnings(settings: Settings, items: Sequence[RecordingWarning], run_id: str) -> int:
    """Write recordings labelled with a caveat to the warehouse's recording_warnings table
    (one row per kind, recording and content; a re-run updates it)."""
    from dataclasses import asdict

    from ser_pipeline import warehouse

    if not items:
        return 0
    with _writing(settings) as con:
        return warehouse.record_warnings(con, [asdict(w) for w in items], run_id=run_id)


def record_validations(settings: Settings, results: Sequence[tuple[str, ValidationResult]], run_id: str) -> None:
    """Store GX results (one row per suite and target) in the warehouse."""
    from ser_pipeline import warehouse

    if not results:
        return
    with _writing(settings) as con:
        for target, result in results:
            warehouse.record_validation(
                con, result.suite, target, result.success, n_expectations=result.evaluated,
                n_failed=len(result.failed), details=result.to_dict(), run_id=run_id,
            )


# -- 1. discover ------------------------------------------------------------------------------


def _read_manifest_frame(survey_url: str, settings: Settings) -> pd.DataFrame:
    """The survey's raw manifest rows as strings (CSV or JSON), for the manifest suite."""
    import io
    import json

    from ser_pipeline.storage import filesystem, join, read_bytes

    csv_url, json_url = join(survey_url, "manifest.csv"), join(survey_url, "manifest.json")
    fs, csv_path = filesystem(csv_url, settings)
    if fs.exists(csv_path):
        return pd.read_csv(io.BytesIO(read_bytes(csv_url, settings)), dtype=str, keep_default_na=False).replace({"": None})
    data = json.loads(read_bytes(json_url, settings))
    rows = data.get("sessions", data) if isinstance(data, dict) else data
    frame = pd.DataFrame(rows)
    if "metadata" in frame:
        frame["metadata"] = [json.dumps(m) if isinstance(m, (dict, list)) else m for m in frame["metadata"]]
    return frame.astype(object)


def _missing_audio(frame: pd.DataFrame, result: ValidationResult) -> str:
    """The audio files the manifest names but the archive lacks, when that is among what
    failed (GX reports only ``[False]``; whoever reads the quarantine needs the names)."""
    rows = sorted({r for f in result.failed if f.column == "audio_file_exists" for r in f.rows})
    if not rows or "audio_file" not in frame:
        return ""
    missing = [str(frame.iloc[r]["audio_file"]) for r in rows]
    return f"\n  missing audio files: {', '.join(missing[:20])}" + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")


# Computed columns of the manifest suite, and the column a person edits to fix them.
_COMPUTED_FROM = {"audio_file_exists": "audio_file", "recorded_at_valid": "recorded_at"}


def _row_reason(frame: pd.DataFrame, row: int, failures: Sequence[Any]) -> str:
    """What one manifest row got wrong, with the value written there."""
    parts = []
    for f in failures:
        column = _COMPUTED_FROM.get(f.column, f.column)
        value = frame.iloc[row][column] if column in frame.columns else None
        parts.append(f"{f.expectation} on {f.column} ({f.why}): {column} = {value!r}")
    return "manifest suite: " + "; ".join(parts)


def _no_manifest(folder: str, n_audio: int) -> Quarantined:
    files = f"{n_audio} audio file{'' if n_audio == 1 else 's'}"
    return Quarantined("manifest", folder, f"no manifest.csv; {files} not labelled; write one with `ser manifest init {folder}`")


def discover(settings: Settings) -> Discovery:
    """Every survey of ``settings.archive_url`` with the sessions it can read.

    What makes a manifest untrustworthy as a whole (it does not parse, a required column is
    missing, a row names no session or another survey, a session id repeats) quarantines the
    survey (stage ``manifest``). A row wrong only about itself (its recording missing, its
    timestamp, participants, metadata or turns file) quarantines that session (stage
    ``session``) and the survey's other sessions go on. A folder holding recordings but no
    manifest is reported (stage ``manifest``) every night until it has one."""
    from ser_pipeline.archive.manifest import read_survey, scan_archive
    from ser_pipeline.validation import validate_manifest

    clock = _Clock()
    scan = scan_archive(settings.archive_url, settings)
    surveys, validations = [], []
    quarantined = [_no_manifest(folder, n) for folder, n in scan.without_manifest.items()]
    for survey_url in scan.surveys:
        try:
            frame = _read_manifest_frame(survey_url, settings)
            result = validate_manifest(frame, survey_url, settings=settings)
            validations.append((survey_url, result))
            if result.table_failures:
                quarantined.append(Quarantined("manifest", survey_url, result.summary() + _missing_audio(frame, result)))
                continue
            set_aside = {row: _row_reason(frame, row, failures) for row, failures in result.row_failures().items()}
            survey = read_survey(survey_url, settings, strict=False, set_aside=set_aside)
            quarantined.extend(Quarantined("session", r.source, f"session {r.session_id} (manifest row {r.row}): {r.reason}")
                               for r in survey.rejected)
            surveys.append(survey)
        except (ManifestError, ValueError, KeyError, OSError) as exc:
            quarantined.append(Quarantined("manifest", survey_url, f"{type(exc).__name__}: {exc}"))
    return Discovery(tuple(surveys), tuple(quarantined), tuple(validations), clock.elapsed)


# -- 2. load surveys --------------------------------------------------------------------------------


def load_surveys(settings: Settings, surveys: Sequence[Any]) -> int:
    """Load each survey's sessions and participants; returns the sessions newly inserted."""
    from ser_pipeline import warehouse

    key = settings.pseudonym_key.get_secret_value()
    inserted = 0
    with _writing(settings) as con:
        for survey in surveys:
            inserted += warehouse.load_survey(con, survey, key=key).inserted
    return inserted


# -- 3. plan ---------------------------------------------------------------------------------------


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


def _labelled_ids(settings: Settings, model_version: str, session_ids: Sequence[str]) -> set[str]:
    """Utterance ids of these sessions that already have this model's prediction."""
    from ser_pipeline import warehouse

    if not session_ids or not settings.warehouse_path.exists():
        return set()
    frame = warehouse.run_query(
        settings.warehouse_path,
        "SELECT p.utterance_id FROM predictions p JOIN utterances u USING (utterance_id) "
        "WHERE p.model_version = $version AND u.session_id IN (SELECT unnest($sessions))",
        {"version": model_version, "sessions": list(session_ids)},
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


def plan(settings: Settings, surveys: Sequence[Any], model_version: str, vad: VadConfig | None = None) -> Plan:
    """Hash and segment every session recording; batch the utterances not yet labelled by
    ``model_version`` (whole sessions per batch, at most ``settings.batch_size`` utterances; longer sessions in parts)."""
    clock = _Clock()
    vad = vad or VadConfig()
    sessions = [(survey, s) for survey in surveys for s in survey.sessions]
    done = _labelled_ids(settings, model_version, [s.session_id for _, s in sessions])
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
                             u.start_s, u.end_s, u.question, session.audio_url)
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


# -- 4. per batch ----------------------------------------------------------------------------------


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

    clock = _Clock()
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

    clock = _Clock()
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

    clock = _Clock()
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


def load_trained_model(settings: Settings, which: str = "champion") -> Any:
    """The model to label with: ``which`` is ``"champion"`` or a registry version."""
    from ser_pipeline.training.registry import load_model

    return load_model(settings.registry_url, which, settings=settings)


def predict_batch(trained: Any, features: BatchFeatures, batch_size: int | None = None) -> BatchPredictions:
    """The model on every window; window probabilities averaged per utterance (in the order
    utterances first appear in ``features.keys``)."""
    from ser_pipeline.inference.predict import pool_windows, predict_proba

    clock = _Clock()
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
    columns = ["utterance_id", "model_version", "label", "confidence", *(f"p_{e}" for e in EMOTIONS),
               "context_label", "context_confidence", *(f"ctx_p_{e}" for e in EMOTIONS)]
    return pd.DataFrame(columns=columns)


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

    clock = _Clock()
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


def load_batch(settings: Settings, batch: Batch, predictions: BatchPredictions, run_id: str) -> BatchLoad:
    """Load the batch's utterances, then their predictions (each loader one transaction,
    keyed, so a repeat inserts nothing twice). Only utterances that have a prediction are loaded."""
    from ser_pipeline import warehouse

    clock = _Clock()
    predicted = set(predictions.frame["utterance_id"])
    utterances = pd.DataFrame([
        {"utterance_id": u.utterance_id, "session_id": u.session_id, "participant_id": u.participant_id,
         "start_s": u.start_s, "end_s": u.end_s, "source_uri": u.source_uri, "content_hash": u.utterance_id,
         "question": u.question}
        for u in batch.utterances if u.utterance_id in predicted
    ], columns=["utterance_id", "session_id", "participant_id", "start_s", "end_s", "source_uri", "content_hash", "question"])
    key = settings.pseudonym_key.get_secret_value()
    with _writing(settings) as con:
        loaded_u = warehouse.load_utterances(con, utterances, key=key)
        loaded_p = warehouse.load_predictions(con, predictions.frame, run_id=run_id)
        warehouse.heartbeat(con, run_id)
    return BatchLoad(batch.index, loaded_u.inserted, loaded_p.inserted, loaded_u.quarantined + loaded_p.quarantined, clock.elapsed)


# -- 5. finish ------------------------------------------------------------------------------------


def finish(settings: Settings, report: NightlyReport) -> None:
    """Record the run's outcome and counts in the warehouse."""
    from ser_pipeline import warehouse

    message = report.error or ("; ".join(f"{r.suite} failed on {t}" for t, r in report.validations if not r.success) or None)
    with _writing(settings) as con:
        warehouse.finish_ingest_run(
            con, report.run_id, status=report.status, n_sessions=report.sessions,
            n_utterances=report.utterances_loaded, n_predictions=report.predictions_loaded,
            n_quarantined=len(report.quarantined), message=message,
        )


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: NightlyReport) -> str:
    """The run's report: counts, emotion mix, validations, quarantined inputs, time per stage."""
    s = report.summary()
    lines = [
        f"# Nightly labeling: {s['status'].upper()}",
        "",
        f"Run `{report.run_id}`, model `{report.model_version}`.",
        "",
        "| what | count |",
        "|---|---:|",
        *(f"| {k.replace('_', ' ')} | {s[k]} |" for k in ("surveys", "sessions", "recordings_seen", "recordings_skipped",
                                                          "utterances_pending", "utterances_loaded", "predictions_loaded",
                                                          "batches", "batches_failed", "quarantined", "warnings",
                                                          "abandoned_runs", "temp_files_removed")),
        "",
        "## Emotion mix (new predictions)",
        "",
    ]
    total = sum(report.emotion_counts.values())
    if total:
        lines += ["| emotion | utterances | share |", "|---|---:|---:|"]
        lines += [f"| {e} | {report.emotion_counts.get(e, 0)} | {report.emotion_counts.get(e, 0) / total:.1%} |" for e in EMOTIONS
                  if report.emotion_counts.get(e, 0)]
    else:
        lines.append("No new predictions.")
    failed = [(t, r) for t, r in report.validations if not r.success]
    lines += ["", "## Validation", "", f"{len(report.validations)} suite runs, {len(failed)} failed."]
    for target, result in failed:
        lines += ["", f"**{result.suite}** on `{_md_escape(target)}`:", ""]
        lines += [f"- {_md_escape(f.describe())}" for f in result.failed]
    lines += ["", "## Quarantined", ""]
    if report.quarantined:
        lines += ["| stage | source | reason |", "|---|---|---|"]
        lines += [f"| {q.stage} | `{_md_escape(q.source)}` | {_md_escape(q.reason)[:300]} |" for q in report.quarantined]
    else:
        lines.append("Nothing quarantined.")
    lines += ["", "## Labelled with a warning", ""]
    if report.warnings:
        lines += ["| source | warning |", "|---|---|"]
        lines += [f"| `{_md_escape(w.source)}` | {_md_escape(w.message)[:300]} |" for w in report.warnings]
    else:
        lines.append("No warnings.")
    if report.abandoned_runs:
        lines += ["", "## Earlier runs found dead", "",
                  f"Marked abandoned: {', '.join(f'`{r}`' for r in report.abandoned_runs)}; "
                  f"{report.temp_files_removed} temporary files of dead processes removed."]
    elif report.temp_files_removed:
        lines += ["", f"{report.temp_files_removed} temporary files of dead processes removed."]
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {seconds:.2f} |" for stage, seconds in report.stage_seconds.items()]
    if report.error:
        lines += ["", "## Error", "", f"```\n{report.error}\n```"]
    return "\n".join(lines) + "\n"


# -- the whole run without Prefect -------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledBatch:
    """One batch featurised, predicted and validated, ready to load. Small on purpose (no
    feature arrays: those are in the store), so it travels cheaply back from a Dask worker."""

    batch: Batch
    predictions: BatchPredictions | None  # None when the features suite failed
    validations: tuple[tuple[str, ValidationResult], ...]
    quarantined: tuple[Quarantined, ...]
    timings: dict[str, float]

    @property
    def loadable(self) -> bool:
        return self.predictions is not None and all(r.success for _, r in self.validations)


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def model_for(settings: Settings, model: Any) -> Any:
    """``model`` itself when it is a loaded model; for a registry version (a string), the model
    loaded once per process (a Dask worker labels many batches with the same model)."""
    if not isinstance(model, str):
        return model
    key = (settings.registry_url, model)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            _MODELS[key] = load_trained_model(settings, model)
        return _MODELS[key]


def label_batch(settings: Settings, batch: Batch, model: Any) -> LabelledBatch:
    """Featurise, validate, predict, add context and validate one batch (no warehouse write).

    ``model`` is a loaded model or a registry version (loaded once per process). This is the
    unit of work the flow spreads over its task runner; loading stays with the flow, one
    writer at a time.

    Once the features are extracted, three things run side by side: the feature-store write
    and the model (both mostly outside the GIL, on two threads) and the GX features suite
    (Python, here). Predictions of a batch whose features fail the suite are discarded, so
    the outcome is the same as validating first; the store write is always finished before
    this returns, so nothing is loaded whose features are not stored.
    """
    trained = model_for(settings, model)
    return label_features(settings, extract_batch(settings, batch, spec_of(trained, settings)), trained)


def label_features(settings: Settings, features: BatchFeatures, model: Any) -> LabelledBatch:
    """:func:`label_batch` from the batch's extracted features on (store, validate, predict,
    context, validate)."""
    from concurrent.futures import ThreadPoolExecutor

    trained = model_for(settings, model)
    batch = features.batch
    target = f"batch {batch.index}: sessions {', '.join(batch.sessions)}"
    with ThreadPoolExecutor(max_workers=2) as pool:
        stored = pool.submit(store_batch_features, settings, features)
        predicted = pool.submit(predict_batch, trained, features)
        clock = _Clock()
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
    clock = _Clock()
    checked = validate_batch_predictions(with_context)
    timings["validate"] += clock.elapsed
    validations.append((target, checked))
    return LabelledBatch(batch, with_context, tuple(validations), quarantined, timings)


# label_batches(settings, batches, model) -> the LabelledBatch of each batch, in any order.
LabelBatches = Callable[[Settings, Sequence[Batch], Any], Iterable[LabelledBatch]]


def label_in_order(settings: Settings, batches: Sequence[Batch], model: Any) -> Iterator[LabelledBatch]:
    """The batches in order in this process, lazily, with the next batch's audio decoded and
    featurised on a background thread while this one is validated, predicted and loaded.

    Decoding and features are numeric work outside the GIL, the suites and the loads mostly
    Python, so the two overlap on two cores. At most two batches' features are in memory.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not batches:
        return
    trained = model_for(settings, model)
    spec = spec_of(trained, settings)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract") as prefetch:
        upcoming = prefetch.submit(extract_batch, settings, batches[0], spec)
        for i in range(len(batches)):
            features = upcoming.result()
            if i + 1 < len(batches):
                upcoming = prefetch.submit(extract_batch, settings, batches[i + 1], spec)
            yield label_features(settings, features, trained)
            del features


def add_labelled(report: NightlyReport, labelled: LabelledBatch) -> None:
    """Count a labelled batch's timings, set-aside inputs and suite results into ``report``."""
    for stage, seconds in labelled.timings.items():
        report.add_time(stage, seconds)
    report.quarantined.extend(labelled.quarantined)
    report.validations.extend(labelled.validations)
    if not labelled.loadable:
        report.batches_failed += 1


def add_load(report: NightlyReport, loaded: BatchLoad, labelled: LabelledBatch) -> None:
    report.add_time("load", loaded.elapsed_s)
    report.utterances_loaded += loaded.utterances_inserted
    report.predictions_loaded += loaded.predictions_inserted
    if loaded.predictions_inserted and labelled.predictions is not None:
        report.emotion_counts.update(labelled.predictions.frame["label"])


def run_nightly(
    archive_url: str | None = None,
    warehouse: str | None = None,
    model: str = "champion",
    batch_size: int | None = None,
    *,
    settings: Settings | None = None,
    run_id: str | None = None,
    flow_run_id: str | None = None,
    step: Step | None = None,
    label_batches: LabelBatches | None = None,
) -> NightlyReport:
    """Label every new utterance of the archive and load the warehouse (see module docstring).

    Returns the report; ``report.failed`` is True when a validation suite failed (that batch
    was not loaded) or the run stopped on an error. ``step(name, fn)`` may wrap each step
    (``flows/nightly.py`` passes one that returns the step's Prefect task).
    ``label_batches`` labels the planned batches (default :func:`label_in_order`, here, one
    after the other); the flow passes one that submits :func:`label_batch` per batch to its
    task runner (threads, or a Dask cluster) and yields results as they complete. Loading
    stays here, one batch at a time.
    """
    call = step or (lambda _name, fn: fn)
    settings = run_settings(archive_url, warehouse, batch_size, settings)
    started = call("start-run", start_run)(settings, flow_run_id=flow_run_id, run_id=run_id)
    report = NightlyReport(run_id=started.run_id, abandoned_runs=list(started.recovery.abandoned_runs),
                           temp_files_removed=len(started.recovery.temp_files_removed))
    try:
        found = call("discover", discover)(settings)
        report.add_time("discover", found.elapsed_s)
        report.quarantined.extend(found.quarantined)
        report.validations.extend(found.validations)
        report.surveys = len(found.surveys)
        clock = _Clock()
        call("load-surveys", load_surveys)(settings, found.surveys)
        report.add_time("load", clock.elapsed)
        clock = _Clock()
        trained = call("load-model", load_trained_model)(settings, model)
        report.model_version = str(trained.version)
        report.add_time("load model", clock.elapsed)
        planned = call("plan", plan)(settings, found.surveys, report.model_version)
        apply_plan(report, planned)
        # In this process the loaded model is handed over; a task runner gets its version.
        model_ref = trained if label_batches is None else report.model_version
        for labelled in (label_batches or label_in_order)(settings, planned.batches, model_ref):
            add_labelled(report, labelled)
            if labelled.loadable:
                loaded = call("load", load_batch)(settings, labelled.batch, labelled.predictions, report.run_id)
                add_load(report, loaded, labelled)
    except SerError as exc:  # expected failures (no champion, warehouse busy, spec mismatch): recorded, run fails
        report.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug: recorded as a failed run, then raised
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        call("record-quarantine", record_quarantine)(settings, report.quarantined, report.run_id)
        call("record-warnings", record_warnings)(settings, report.warnings, report.run_id)
        call("record-validations", record_validations)(settings, report.validations, report.run_id)
        call("finish", finish)(settings, report)
    return report


def apply_plan(report: NightlyReport, planned: Plan) -> None:
    report.add_time("hash + segment", planned.elapsed_s)
    report.sessions = planned.recordings_seen
    report.recordings_seen = planned.recordings_seen
    report.recordings_skipped = planned.recordings_skipped
    report.utterances_total = planned.utterances_total
    report.utterances_pending = planned.utterances_pending
    report.batches = len(planned.batches)
    report.quarantined.extend(planned.quarantined)
    report.warnings.extend(planned.warnings)

