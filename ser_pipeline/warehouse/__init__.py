"""The DuckDB warehouse: schema migrations, idempotent loaders and read-only queries.

DuckDB lets one process write a database file at a time, and a writer also blocks readers in
other processes. So writers hold the file only briefly (open, write one transaction, close:
see :func:`writing`), and :func:`connect` retries with backoff while another process holds
it, then raises :class:`~ser_pipeline.errors.WarehouseBusy` naming the holder.

Every loader runs one transaction per batch and is idempotent: rows are keyed (see
``sql/schema.sql``) and a key already present is left alone, so re-running a batch inserts
nothing twice. Predictions are keyed by ``(utterance_id, model_version)``, so a new model
version adds its rows beside the old ones.

Participants are stored only as ``participant_key = HMAC-SHA256(pseudonym_key, id)``
(:func:`pseudonymise`); raw participant ids never reach the warehouse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from ser_pipeline.errors import SerError, WarehouseBusy
from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.resources import SQL_DIR
from ser_pipeline.settings import Settings, get_settings

if TYPE_CHECKING:
    from ser_pipeline.archive.manifest import Survey

MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
VIEWS_FILE = SQL_DIR / "views.sql"

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

_LOCK_ERROR = re.compile(r"Could not set lock|Conflicting lock", re.IGNORECASE)
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")
_MIGRATION_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>\w+)\.sql$")


class WarehouseLoadError(SerError):
    """A batch handed to a loader is malformed as a whole (missing columns, wrong shape)."""


@dataclass(frozen=True)
class LoadResult:
    """What one loader call did: rows newly inserted, already present, sent to quarantine."""

    table: str
    inserted: int
    already_present: int
    quarantined: int = 0


# --------------------------------------------------------------------------------------------
# Pseudonyms


def _key_bytes(key: str | bytes | Any) -> bytes:
    if hasattr(key, "get_secret_value"):
        key = key.get_secret_value()
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def pseudonymise(participant_id: str, key: str | bytes | Any = None) -> str:
    """The participant's stable pseudonym: HMAC-SHA256 of the id under ``key``, hex (64 chars).

    Keyed rather than a plain hash so that nobody holding the warehouse but not the key can
    confirm a guessed id by hashing it. ``key`` defaults to ``Settings.pseudonym_key``.
    """
    key = get_settings().pseudonym_key if key is None else key
    return hmac.new(_key_bytes(key), str(participant_id).encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# Connections


def _describe_lock(exc: Exception) -> str:
    match = _LOCK_HOLDER.search(str(exc))
    if match:
        return f"process {match['pid']} ({match['program']})"
    return "another process"


def connect(
    path: str | Path | None = None,
    read_only: bool = False,
    wait_s: float | None = None,
    settings: Settings | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``path`` (default ``Settings.warehouse_path``).

    While another process holds the file, retry with exponential backoff (50 ms doubling up
    to 1 s) for up to ``wait_s`` seconds (default ``Settings.warehouse_wait_s``), then raise
    :class:`WarehouseBusy` naming the holding process. The session time zone is
    ``Settings.timezone``, which decides the week boundaries in the views.
    """
    settings = settings or get_settings()
    path = Path(path or settings.warehouse_path)
    wait_s = settings.warehouse_wait_s if wait_s is None else wait_s
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist; create it with `ser warehouse migrate`")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait_s, 0.0)
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _LOCK_ERROR.search(str(exc)):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseBusy(
                    f"warehouse {path} is locked by {_describe_lock(exc)}; waited {wait_s:g} s. "
                    "A writer holds it for the length of one transaction; if that process is stuck, stop it."
                ) from exc
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
    con.execute(f"SET TimeZone = '{_quote(settings.timezone)}'")
    return con


def _quote(text: str) -> str:
    return str(text).replace("'", "''")


@contextmanager
def writing(path: str | Path | None = None, wait_s: float | None = None, settings: Settings | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for writing, migrate it, yield the connection and close it again.

    The pattern for every writer: hold the file only for the few statements that need it.
    """
    con = connect(path, read_only=False, wait_s=wait_s, settings=settings)
    try:
        migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


# --------------------------------------------------------------------------------------------
# Migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations() -> list[Migration]:
    """The numbered migrations in ``sql/migrations``, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {MIGRATIONS_DIR}: {versions}")
    return found


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied (0 for an empty database)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = 'main'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None) -> list[int]:
    """Apply the migrations not yet applied (up to ``target``), then (re)create the views.

    Each migration runs in its own transaction together with its ``schema_migrations`` row,
    so a failed migration leaves the database at the previous version. Returns the versions
    applied now.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = schema_version(con)
    applied = []
    for migration in migrations():
        if migration.version <= current or (target is not None and migration.version > target):
            continue
        with transaction(con):
            con.execute(migration.path.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [migration.version, migration.name])
        applied.append(migration.version)
    if schema_version(con) >= 1:
        with transaction(con):
            con.executemany(
                "INSERT INTO emotions VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET position = excluded.position, is_negative = excluded.is_negative",
                [[e, i, e in NEGATIVE_EMOTIONS] for i, e in enumerate(EMOTIONS)],
            )
    if target is None or target >= max((m.version for m in migrations()), default=0):
        con.execute(VIEWS_FILE.read_text())
    return applied


# --------------------------------------------------------------------------------------------
# Loaders


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


def load_survey(con: duckdb.DuckDBPyConnection, survey: "Survey", key: Any = None) -> LoadResult:
    """Load a survey's row, its sessions and its participants (pseudonymised) in one transaction.

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


def load_utterances(con: duckdb.DuckDBPyConnection, df: pd.DataFrame, key: Any = None) -> LoadResult:
    """Load utterances: one row per ``utterance_id`` with ``session_id, start_s, end_s,
    source_uri, content_hash`` and either ``participant_id`` (raw; pseudonymised here) or
    ``participant_key``; optional ``question`` and ``duration_s`` (default ``end_s - start_s``).

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


def record_model_version(
    con: duckdb.DuckDBPyConnection,
    model_version: str,
    metrics: Mapping[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    feature_spec: str | None = None,
    created_at: datetime | None = None,
    promoted_at: datetime | None = None,
) -> None:
    """Record (or update) a model version with its evaluation metrics (stored as JSON)."""
    with transaction(con):
        con.execute(
            "INSERT INTO model_versions (model_version, created_at, labels, feature_spec, metrics, promoted_at) "
            "VALUES (?, coalesce(?, now()), ?, ?, CAST(? AS JSON), ?) "
            "ON CONFLICT DO UPDATE SET created_at = coalesce(?, model_versions.created_at), "
            "labels = coalesce(excluded.labels, model_versions.labels), "
            "feature_spec = coalesce(excluded.feature_spec, model_versions.feature_spec), "
            "metrics = coalesce(excluded.metrics, model_versions.metrics), "
            "promoted_at = coalesce(excluded.promoted_at, model_versions.promoted_at)",
            [model_version, created_at, list(labels) if labels else None, feature_spec, _json(metrics), promoted_at, created_at],
        )


def promote_model(con: duckdb.DuckDBPyConnection, model_version: str, at: datetime | None = None) -> None:
    """Mark ``model_version`` promoted now (or ``at``); the views then report its labels."""
    with transaction(con):
        updated = con.execute(
            "UPDATE model_versions SET promoted_at = coalesce(?, now()) WHERE model_version = ? RETURNING 1",
            [at, model_version],
        ).fetchall()
    if not updated:
        raise KeyError(f"model version {model_version!r} is not recorded in the warehouse")


def pin_model(con: duckdb.DuckDBPyConnection, model_version: str | None, pinned_by: str | None = None) -> None:
    """Pin the views to ``model_version`` whatever is promoted; ``None`` removes the pin."""
    with transaction(con):
        con.execute("DELETE FROM current_model")
        if model_version is not None:
            if not con.execute("SELECT 1 FROM model_versions WHERE model_version = ?", [model_version]).fetchall():
                raise KeyError(f"model version {model_version!r} is not recorded in the warehouse")
            con.execute("INSERT INTO current_model (model_version, pinned_by) VALUES (?, ?)", [model_version, pinned_by])


def current_model(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The version the views report and why it was chosen, or None when none is recorded."""
    row = con.execute("SELECT model_version, chosen_by FROM v_current_model").fetchone()
    return (row[0], row[1]) if row else None


def start_ingest_run(
    con: duckdb.DuckDBPyConnection,
    flow_run_id: str | None = None,
    flow_name: str | None = None,
    run_id: str | None = None,
) -> str:
    """Record that an ingest run started; returns its id (``run_id``, else the flow run id,
    else a new UUID). Starting the same run again (a retried flow) resets it to running."""
    from ser_pipeline.storage import this_host

    run_id = run_id or flow_run_id or uuid.uuid4().hex
    with transaction(con):
        con.execute(
            "INSERT INTO ingest_runs (run_id, flow_run_id, flow_name, started_at, status, host, pid, heartbeat_at) "
            "VALUES (?, ?, ?, now(), 'running', ?, ?, now()) "
            "ON CONFLICT DO UPDATE SET started_at = now(), status = 'running', finished_at = NULL, "
            "host = excluded.host, pid = excluded.pid, heartbeat_at = now()",
            [run_id, flow_run_id, flow_name, this_host(), os.getpid()],
        )
    return run_id


def heartbeat(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Note that run ``run_id`` is still alive (``ingest_runs.heartbeat_at``)."""
    con.execute("UPDATE ingest_runs SET heartbeat_at = now() WHERE run_id = ?", [run_id])


@dataclass(frozen=True)
class RunningRun:
    """An ingest run the warehouse still marks running."""

    run_id: str
    host: str | None
    pid: int | None
    started_at: datetime
    heartbeat_at: datetime | None


def running_runs(con: duckdb.DuckDBPyConnection, except_run: str | None = None) -> list[RunningRun]:
    rows = con.execute(
        "SELECT run_id, host, pid, started_at, heartbeat_at FROM ingest_runs WHERE status = 'running' "
        "AND run_id IS DISTINCT FROM ? ORDER BY started_at", [except_run],
    ).fetchall()
    return [RunningRun(*row) for row in rows]


def abandon_run(con: duckdb.DuckDBPyConnection, run_id: str, found_by: str, reason: str, tmp_files_removed: int) -> None:
    """Mark a run that died mid-way ``abandoned``: when, by which run, why, and the temporary
    files of its process that were removed."""
    with transaction(con):
        con.execute(
            "UPDATE ingest_runs SET status = 'abandoned', finished_at = now(), abandoned_at = now(), abandoned_by = ?, "
            "tmp_files_removed = ?, message = ? WHERE run_id = ? AND status = 'running'",
            [found_by, tmp_files_removed, reason, run_id],
        )


def _warning_id(kind: str, source: str, content_hash: str | None) -> str:
    return hashlib.sha256(f"{kind}:{source}:{content_hash or ''}".encode()).hexdigest()[:32]


def record_warnings(con: duckdb.DuckDBPyConnection, rows: Iterable[Mapping[str, Any]], run_id: str | None = None) -> int:
    """Record inputs labelled with a caveat (``kind``, ``source``, ``message``; optionally
    ``session_id``, ``content_hash``, ``declared_s``, ``found_s``). The same warning again
    updates its row. Returns the rows written."""
    values = [
        [_warning_id(r["kind"], r["source"], r.get("content_hash")), r["kind"], r["source"], r.get("session_id"),
         r.get("content_hash"), r.get("declared_s"), r.get("found_s"), r["message"], run_id]
        for r in rows
    ]
    if not values:
        return 0
    with transaction(con):
        con.executemany(
            "INSERT INTO recording_warnings (warning_id, kind, source, session_id, content_hash, declared_s, found_s, message, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET message = excluded.message, "
            "declared_s = excluded.declared_s, found_s = excluded.found_s, run_id = excluded.run_id, warned_at = now()",
            values,
        )
    return len(values)


def finish_ingest_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str = "completed",
    n_sessions: int | None = None,
    n_utterances: int | None = None,
    n_predictions: int | None = None,
    n_quarantined: int | None = None,
    message: str | None = None,
) -> None:
    """Record how an ingest run ended (``completed``, ``partial`` or ``failed``) and its counts."""
    with transaction(con):
        updated = con.execute(
            "UPDATE ingest_runs SET finished_at = now(), status = ?, n_sessions = ?, n_utterances = ?, "
            "n_predictions = ?, n_quarantined = ?, message = ? WHERE run_id = ? RETURNING 1",
            [status, n_sessions, n_utterances, n_predictions, n_quarantined, message, run_id],
        ).fetchall()
    if not updated:
        raise KeyError(f"ingest run {run_id!r} was never started")


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


def record_validation(
    con: duckdb.DuckDBPyConnection,
    suite: str,
    target: str,
    success: bool,
    n_expectations: int | None = None,
    n_failed: int | None = None,
    details: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> str:
    """Record one validation outcome (a GX suite run against ``target``); returns its id.
    Validating the same target with the same suite in the same run replaces the result."""
    validation_id = hashlib.sha256(f"{run_id or ''}:{suite}:{target}".encode()).hexdigest()[:32]
    with transaction(con):
        con.execute(
            "INSERT INTO validation_results (validation_id, run_id, suite, target, success, n_expectations, n_failed, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS JSON)) ON CONFLICT DO UPDATE SET success = excluded.success, "
            "n_expectations = excluded.n_expectations, n_failed = excluded.n_failed, details = excluded.details, "
            "validated_at = now()",
            [validation_id, run_id, suite, target, bool(success), n_expectations, n_failed, _json(details)],
        )
    return validation_id


def rotate_pseudonym_key(
    con: duckdb.DuckDBPyConnection, participant_ids: Iterable[str], old_key: Any, new_key: Any
) -> int:
    """Re-key every participant reference from ``old_key`` to ``new_key`` in one transaction.

    The warehouse cannot invert its pseudonyms, so the raw ids come from the archive's
    ``participants.csv`` files. Returns the number of participant rows re-keyed.
    """
    mapping = pd.DataFrame(
        [(pseudonymise(p, old_key), pseudonymise(p, new_key)) for p in sorted(set(participant_ids))],
        columns=["old_key", "new_key"],
    )
    con.register("_rekey", mapping)
    try:
        with transaction(con):
            n = con.execute(
                "UPDATE participants SET participant_key = m.new_key FROM _rekey m WHERE participants.participant_key = m.old_key RETURNING 1"
            ).fetchall()
            for table in ("session_participants", "utterances"):
                con.execute(f"UPDATE {table} SET participant_key = m.new_key FROM _rekey m WHERE {table}.participant_key = m.old_key")
    finally:
        con.unregister("_rekey")
    return len(n)


# --------------------------------------------------------------------------------------------
# Reading


def _set_variables(con: duckdb.DuckDBPyConnection, model_version: str | None, review_threshold: float | None) -> None:
    if model_version is not None:
        con.execute("SET VARIABLE ser_model_version = ?", [str(model_version)])
    if review_threshold is not None:
        con.execute("SET VARIABLE ser_review_threshold = ?", [float(review_threshold)])


def run_query(
    path: str | Path | None,
    sql: str,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    model_version: str | None = None,
    review_threshold: float | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Run ``sql`` on a read-only connection with bound parameters (``$name`` with a mapping,
    ``?`` with a sequence) and return the result. Parameter values never become SQL text, and
    the connection can neither write the database nor touch other files (no ``COPY ... TO``,
    ``read_csv``, ``ATTACH`` or extension installs; the configuration is locked). ``model_version`` chooses the model the views report."""
    con = connect(path, read_only=True, settings=settings)
    try:
        _set_variables(con, model_version, review_threshold)
        # Read-only covers the database, not the machine: without this, COPY ... TO writes any
        # file and read_csv() reads one. Locked, so the SQL cannot switch it back on.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        relation = con.execute(sql, params) if params else con.execute(sql)
        return relation.df()
    finally:
        con.close()


@dataclass(frozen=True)
class NamedQuery:
    """An analysts' query from ``sql/queries/<name>.sql``.

    The file's first comment line is the question it answers; a ``-- params: a, b=default``
    line lists its ``$name`` parameters (those without a default are required).
    """

    name: str
    question: str
    params: tuple[tuple[str, str | None], ...]
    sql: str

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters to bind: ``given`` over the defaults; raises ValueError naming
        a missing or unknown parameter."""
        known = dict(self.params)
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"query {self.name!r} has no parameter {unknown}; its parameters: {self.describe_params()}")
        bound = {k: given.get(k, default) for k, default in known.items()}
        missing = [k for k, v in bound.items() if v is None]
        if missing:
            raise ValueError(f"query {self.name!r} needs --param {missing[0]}=VALUE; its parameters: {self.describe_params()}")
        return bound

    def describe_params(self) -> str:
        return ", ".join(k if d is None else f"{k}={d}" for k, d in self.params) or "(none)"


def _parse_query(path: Path) -> NamedQuery:
    text = path.read_text()
    comments = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
    if not comments:
        raise ValueError(f"{path}: the first line must be a '-- question' comment")
    params: list[tuple[str, str | None]] = []
    for line in comments[1:]:
        if line.lower().startswith("params:"):
            for item in filter(None, (i.strip() for i in line.split(":", 1)[1].split(","))):
                name, _, default = item.partition("=")
                params.append((name.strip(), default.strip() if default else None))
    return NamedQuery(path.stem, comments[0], tuple(params), text)


def named_queries(folder: Path = QUERIES_DIR) -> dict[str, NamedQuery]:
    """The example analysts' queries, by name (the file stem)."""
    return {q.name: q for q in map(_parse_query, sorted(folder.glob("*.sql")))}


def run_named_query(
    path: str | Path | None,
    name: str,
    params: Mapping[str, Any] | None = None,
    model_version: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Run ``sql/queries/<name>.sql`` read-only with its parameters bound."""
    queries = named_queries()
    if name not in queries:
        raise KeyError(f"no query named {name!r}; known: {', '.join(queries)}")
    query = queries[name]
    return run_query(path, query.sql, query.bind(params or {}) or None, model_version=model_version, settings=settings)


def status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What is in the warehouse: schema version, row counts, the current model, the last run."""
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("surveys", "sessions", "participants", "utterances", "predictions", "model_versions",
                  "ingest_runs", "quarantine", "validation_results", "recording_warnings")
        if t != "recording_warnings" or schema_version(con) >= 3
    } if schema_version(con) else {}
    last_run = None
    if counts:
        row = con.execute(
            "SELECT run_id, status, started_at, finished_at FROM ingest_runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        if row:
            last_run = {"run_id": row[0], "status": row[1], "started_at": str(row[2]), "finished_at": str(row[3]) if row[3] else None}
    abandoned = []
    if schema_version(con) >= 3:
        abandoned = [
            {"run_id": r[0], "started_at": str(r[1]), "abandoned_at": str(r[2]), "abandoned_by": r[3],
             "tmp_files_removed": r[4], "message": r[5]}
            for r in con.execute(
                "SELECT run_id, started_at, abandoned_at, abandoned_by, tmp_files_removed, message FROM ingest_runs "
                "WHERE status = 'abandoned' ORDER BY abandoned_at DESC LIMIT 10"
            ).fetchall()
        ]
    model = current_model(con) if counts else None
    pending = [m.version for m in migrations() if m.version > schema_version(con)]
    return {
        "schema_version": schema_version(con),
        "pending_migrations": pending,
        "rows": counts,
        "current_model": {"model_version": model[0], "chosen_by": model[1]} if model else None,
        "last_ingest_run": last_run,
        "abandoned_runs": abandoned,
    }
