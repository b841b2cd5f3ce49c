"""The idempotent loaders of surveys, utterances and predictions, and the quarantine that takes
the rows they reject. Each loader runs one transaction per batch and inserts only keys not
yet present, so a batch loaded twice adds nothing; the shared row helpers (JSON values,
insert-new, semi-join presence) live here with them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from ser_pipeline.errors import SerError
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.warehouse.connection import transaction
from ser_pipeline.warehouse.pseudonyms import pseudonymise

if TYPE_CHECKING:
    from ser_pipeline.archive.manifest import Survey

PROBABILITY_COLUMNS = tuple(f"p_{e}" for e in EMOTIONS)
CONTEXT_PROBABILITY_COLUMNS = tuple(f"ctx_p_{e}" for e in EMOTIONS)
PREDICTION_COLUMNS = (
    "utterance_id", "model_version", "label", "confidence", *PROBABILITY_COLUMNS,
    "context_label", "context_confidence", *CONTEXT_PROBABILITY_COLUMNS,
)
UTTERANCE_COLUMNS = (
    "utterance_id", "session_id", "participant_key", "start_s", "end_s", "duration_s",
    "source_uri", "content_hash", "question",
)


class WarehouseLoadError(SerError):
    """A batch handed to a loader is malformed as a whole (missing columns, wrong shape)."""


@dataclass(frozen=True)
class LoadResult:
    """What one loader call did: rows newly inserted, already present, sent to quarantine."""

    table: str
    inserted: int
    already_present: int
    quarantined: int = 0


def _plain(value: Any) -> Any:
    """JSON fallback: NumPy scalars and arrays as numbers and lists, anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(value, sort_keys=True, default=_plain)


def _insert_new(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, columns: Sequence[str]) -> int:
    """Insert the rows of ``frame`` whose key is not yet in ``table``; return how many."""
    cols = ", ".join(columns)
    con.register("_batch", frame[list(columns)])
    try:
        return con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _batch ON CONFLICT DO NOTHING").fetchone()[0]
    finally:
        con.unregister("_batch")


def _present(con: duckdb.DuckDBPyConnection, table: str, column: str, values: pd.Series) -> set[str]:
    """The ``values`` already in ``table.column`` (a semi-join in DuckDB, so the table is not
    pulled into Python)."""
    con.register("_values", pd.DataFrame({"value": values.astype(str).unique()}))
    try:
        return {r[0] for r in con.execute(f"SELECT value FROM _values WHERE value IN (SELECT {column} FROM {table})").fetchall()}
    finally:
        con.unregister("_values")


def _quarantine_id(stage: str, source: str, content_hash: str | None) -> str:
    return hashlib.sha256(f"{stage}:{source}:{content_hash or ''}".encode()).hexdigest()[:32]


def _quarantine_rows(con: duckdb.DuckDBPyConnection, rows: Sequence[Mapping[str, Any]], run_id: str | None = None) -> int:
    if not rows:
        return 0
    values = []
    for row in rows:
        source = str(row["source"])
        stage = str(row.get("stage") or "unknown")
        content_hash = row.get("content_hash")
        values.append([
            _quarantine_id(stage, source, content_hash), stage, source, content_hash, str(row["reason"]),
            _json(row.get("details")), row.get("run_id") or run_id,
        ])
    con.executemany(
        "INSERT INTO quarantine (quarantine_id, stage, source, content_hash, reason, details, run_id) "
        "VALUES (?, ?, ?, ?, ?, CAST(? AS JSON), ?) ON CONFLICT DO UPDATE SET reason = excluded.reason, "
        "details = excluded.details, run_id = excluded.run_id, quarantined_at = now()",
        values,
    )
    return len(values)


def quarantine(con: duckdb.DuckDBPyConnection, rows: Iterable[Mapping[str, Any]] | pd.DataFrame, run_id: str | None = None) -> int:
    """Record rejected inputs: each row has ``source`` and ``reason``, optionally ``stage``,
    ``content_hash``, ``details`` (JSON-able) and ``run_id``. The same input rejected again
    at the same stage updates its row instead of adding one. Returns the rows written."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict("records")
    rows = list(rows)
    for row in rows:
        if not row.get("source") or not row.get("reason"):
            raise WarehouseLoadError(f"quarantine row needs 'source' and 'reason': {row!r}")
    with transaction(con):
        return _quarantine_rows(con, rows, run_id)


def load_survey(con: duckdb.DuckDBPyConnection, survey: "Survey", key: Any) -> LoadResult:
    """Load a survey's row, its sessions and its participants (pseudonymised under ``key``,
    the caller's ``Settings.pseudonym_key``) in one transaction.

    Re-loading updates what a corrected manifest changed (a session's metadata, a
    participant's segment) and inserts nothing twice. ``inserted`` counts new sessions.
    """
    pseudonym = {p.participant_id: pseudonymise(p.participant_id, key) for p in survey.participants}
    for session in survey.sessions:
        for pid in session.participant_ids:
            pseudonym.setdefault(pid, pseudonymise(pid, key))
    sessions = pd.DataFrame(
        [
            {
                "session_id": s.session_id,
                "survey_id": s.survey_id,
                "recorded_at": pd.Timestamp(s.recorded_at).tz_convert("UTC"),
                "moderator": s.moderator,
                "market": s.market,
                "location": s.location,
                "audio_url": s.audio_url,
                "turns_source": s.turns_source,
                "metadata": _json(dict(s.metadata)),
            }
            for s in survey.sessions
        ],
        columns=["session_id", "survey_id", "recorded_at", "moderator", "market", "location", "audio_url", "turns_source", "metadata"],
    )
    participants = pd.DataFrame(
        [
            {"survey_id": survey.survey_id, "participant_key": pseudonym[p.participant_id], "age_band": p.age_band,
             "gender": p.gender, "market": p.market, "segment": p.segment}
            for p in survey.participants
        ],
        columns=["survey_id", "participant_key", "age_band", "gender", "market", "segment"],
    )
    links = pd.DataFrame(
        sorted({(s.session_id, pseudonym[pid]) for s in survey.sessions for pid in s.participant_ids}),
        columns=["session_id", "participant_key"],
    )
    clash = con.execute(
        "SELECT session_id, survey_id FROM sessions WHERE survey_id <> ? AND list_contains(?, session_id) ORDER BY 1 LIMIT 1",
        [survey.survey_id, [s.session_id for s in survey.sessions]],
    ).fetchone()
    if clash:
        raise WarehouseLoadError(
            f"survey {survey.survey_id} ({survey.url}): session id {clash[0]!r} already belongs to survey {clash[1]!r}; "
            "session ids must be unique across the archive"
        )
    with transaction(con):
        con.execute(
            "INSERT INTO surveys (survey_id, source_url, n_sessions, n_participants) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET source_url = excluded.source_url, n_sessions = excluded.n_sessions, "
            "n_participants = excluded.n_participants, loaded_at = now()",
            [survey.survey_id, survey.url, len(survey.sessions), len(survey.participants)],
        )
        before = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
        con.register("_sessions", sessions)
        con.execute(
            "INSERT INTO sessions (session_id, survey_id, recorded_at, moderator, market, location, audio_url, turns_source, metadata) "
            "SELECT session_id, survey_id, recorded_at, moderator, market, location, audio_url, turns_source, CAST(metadata AS JSON) FROM _sessions "
            "ON CONFLICT DO UPDATE SET survey_id = excluded.survey_id, recorded_at = excluded.recorded_at, "
            "moderator = excluded.moderator, market = excluded.market, location = excluded.location, "
            "audio_url = excluded.audio_url, turns_source = excluded.turns_source, metadata = excluded.metadata"
        )
        con.unregister("_sessions")
        inserted = con.execute("SELECT count(*) FROM sessions").fetchone()[0] - before
        con.register("_participants", participants)
        con.execute(
            "INSERT INTO participants SELECT * FROM _participants ON CONFLICT DO UPDATE SET "
            "age_band = excluded.age_band, gender = excluded.gender, market = excluded.market, segment = excluded.segment"
        )
        con.unregister("_participants")
        _insert_new(con, "session_participants", links, ["session_id", "participant_key"])
    return LoadResult("sessions", inserted, len(sessions) - inserted)


def _require_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise WarehouseLoadError(f"{what} batch lacks columns {missing}; it has {list(frame.columns)}")


def load_utterances(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, key: Any) -> LoadResult:
    """Load utterances: one row per ``utterance_id`` with ``session_id, start_s, end_s,
    source_uri, content_hash`` and either ``participant_id`` (raw; pseudonymised here) or
    ``participant_key`` (raw ids are hashed under ``key``); optional ``question`` and ``duration_s`` (default ``end_s - start_s``).

    Rows whose session is not in the warehouse, or whose times are impossible, go to
    quarantine with the reason; the rest load in one transaction.
    """
    _require_columns(df, ["utterance_id", "session_id", "start_s", "end_s", "source_uri", "content_hash"], "utterance")
    frame = df.drop_duplicates("utterance_id").copy()
    if "participant_key" not in frame.columns:
        if "participant_id" in frame.columns:
            frame["participant_key"] = [None if pd.isna(p) else pseudonymise(p, key) for p in frame["participant_id"]]
        else:
            frame["participant_key"] = None
    if "question" not in frame.columns:
        frame["question"] = None
    frame["question"] = frame["question"].astype(object).where(frame["question"].notna(), None)
    frame["start_s"] = frame["start_s"].astype(float)
    frame["end_s"] = frame["end_s"].astype(float)
    if "duration_s" not in frame.columns:
        frame["duration_s"] = frame["end_s"] - frame["start_s"]
    known_sessions = _present(con, "sessions", "session_id", frame["session_id"])
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons[~frame["session_id"].isin(known_sessions)] = "unknown session (load the survey first)"
    bad_times = ~((frame["end_s"] > frame["start_s"]) & (frame["start_s"] >= 0))
    reasons[bad_times & reasons.isna()] = "end_s must be after start_s and start_s non-negative"
    rejected = frame[reasons.notna()]
    good = frame[reasons.isna()]
    with transaction(con):
        inserted = _insert_new(con, "utterances", good, UTTERANCE_COLUMNS)
        _quarantine_rows(con, [
            {"stage": "utterances", "source": f"{r.source_uri}#t={r.start_s:g},{r.end_s:g}", "content_hash": r.content_hash,
             "reason": reasons[i], "details": {"utterance_id": r.utterance_id, "session_id": r.session_id,
                                               "start_s": r.start_s, "end_s": r.end_s}}
            for i, r in rejected.iterrows()
        ])
    return LoadResult("utterances", inserted, len(good) - inserted, len(rejected))


def load_predictions(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, run_id: str | None = None) -> LoadResult:
    """Load predictions (the frame ``inference`` writes; see docs/ARCHITECTURE.md).

    Keyed by ``(utterance_id, model_version)``: loading the same batch twice inserts nothing
    twice, and a new model version's rows sit beside the old ones. Missing ``p_*``/``ctx_*``
    columns are stored as NULL. Rows for unknown utterances, unknown labels or a confidence
    outside [0, 1] go to quarantine. A model version not yet recorded is recorded bare.
    """
    _require_columns(df, ["utterance_id", "model_version", "label", "confidence"], "prediction")
    frame = df.drop_duplicates(["utterance_id", "model_version"]).copy()
    for column in PREDICTION_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    for column in ("confidence", "context_confidence", *PROBABILITY_COLUMNS, *CONTEXT_PROBABILITY_COLUMNS):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["context_label"] = frame["context_label"].astype(object).where(frame["context_label"].notna(), None)
    frame["ingest_run_id"] = run_id
    known = _present(con, "utterances", "utterance_id", frame["utterance_id"])
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons[~frame["label"].isin(EMOTIONS)] = "label is not one of labels.EMOTIONS"
    in_range = frame["confidence"].between(0, 1)
    reasons[~in_range & reasons.isna()] = "confidence is not within [0, 1]"
    reasons[~frame["utterance_id"].isin(known) & reasons.isna()] = "unknown utterance (load utterances first)"
    rejected = frame[reasons.notna()]
    good = frame[reasons.isna()]
    with transaction(con):
        for version in sorted(good["model_version"].unique()):
            con.execute("INSERT INTO model_versions (model_version) VALUES (?) ON CONFLICT DO NOTHING", [version])
        inserted = _insert_new(con, "predictions", good, (*PREDICTION_COLUMNS, "ingest_run_id"))
        _quarantine_rows(con, [
            {"stage": "predictions", "source": f"{r.utterance_id}@{r.model_version}", "content_hash": None,
             "reason": reasons[i], "details": {"label": r.label, "confidence": r.confidence}, "run_id": run_id}
            for i, r in rejected.iterrows()
        ])
    return LoadResult("predictions", inserted, len(good) - inserted, len(rejected))


TRANSCRIPT_COLUMNS = (
    "utterance_id", "model", "text", "language", "language_source", "language_probability",
    "avg_logprob", "no_speech_prob", "empty_reason", "n_redacted",
)


def load_transcripts(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, run_id: str | None = None) -> LoadResult:
    """Load transcripts (``transcripts.transcripts_frame``; text already redacted).

    Keyed by ``(utterance_id, model)`` like the predictions: loading a batch twice inserts
    nothing twice. Rows for unknown utterances, or with text and an ``empty_reason`` both
    (or neither), go to quarantine."""
    _require_columns(df, ["utterance_id", "model", "text"], "transcript")
    frame = df.drop_duplicates(["utterance_id", "model"]).copy()
    for column in TRANSCRIPT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    for column in ("language_probability", "avg_logprob", "no_speech_prob"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["n_redacted"] = pd.to_numeric(frame["n_redacted"], errors="coerce").fillna(0).astype(int)
    for column in ("language", "language_source", "empty_reason"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["ingest_run_id"] = run_id
    known = _present(con, "utterances", "utterance_id", frame["utterance_id"])
    has_text = frame["text"].str.strip() != ""
    has_reason = frame["empty_reason"].notna()
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons[has_text & has_reason] = "a transcript with words cannot also have an empty_reason"
    reasons[~has_text & ~has_reason & reasons.isna()] = "an empty transcript needs an empty_reason"
    reasons[~frame["utterance_id"].isin(known) & reasons.isna()] = "unknown utterance (load utterances first)"
    rejected = frame[reasons.notna()]
    good = frame[reasons.isna()]
    with transaction(con):
        inserted = _insert_new(con, "transcripts", good, (*TRANSCRIPT_COLUMNS, "ingest_run_id"))
        _quarantine_rows(con, [
            # The text itself never goes to quarantine: only that a transcript was refused.
            {"stage": "transcripts", "source": f"{r.utterance_id}@{r.model}", "content_hash": None,
             "reason": reasons[i], "details": {"empty_reason": r.empty_reason}, "run_id": run_id}
            for i, r in rejected.iterrows()
        ])
    return LoadResult("transcripts", inserted, len(good) - inserted, len(rejected))
