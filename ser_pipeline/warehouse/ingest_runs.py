"""The bookkeeping of ingest runs: started, heartbeat, finished or abandoned, with the
recording warnings and validation outcomes recorded along the way; what ``ser warehouse
status`` and run recovery read back.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from ser_pipeline.warehouse.connection import transaction
from ser_pipeline.warehouse.loads import _json


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
