"""The read side: SQL on a locked-down read-only connection with bound parameters, the
analysts' named queries of ``sql/queries``, and :func:`status`, the summary of what the
warehouse holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ser_pipeline.resources import SQL_DIR
from ser_pipeline.settings import Settings
from ser_pipeline.warehouse.connection import connect
from ser_pipeline.warehouse.models import current_model
from ser_pipeline.warehouse.schema import migrations, schema_version

QUERIES_DIR = SQL_DIR / "queries"


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
    *,
    settings: Settings,
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
    line lists its ``$name`` parameters (those without a default are required; ``c=``, an
    empty default, makes one optional: the SQL reads ``''`` as "not given").
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
                name, sep, default = item.partition("=")
                params.append((name.strip(), default.strip() if sep else None))
    return NamedQuery(path.stem, comments[0], tuple(params), text)


def named_queries(folder: Path = QUERIES_DIR) -> dict[str, NamedQuery]:
    """The example analysts' queries, by name (the file stem)."""
    return {q.name: q for q in map(_parse_query, sorted(folder.glob("*.sql")))}


def run_named_query(
    path: str | Path | None,
    name: str,
    params: Mapping[str, Any] | None = None,
    model_version: str | None = None,
    *,
    settings: Settings,
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
                  "ingest_runs", "quarantine", "validation_results", "recording_warnings", "transcripts")
        if {"recording_warnings": 3, "transcripts": 4}.get(t, 1) <= schema_version(con)
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
