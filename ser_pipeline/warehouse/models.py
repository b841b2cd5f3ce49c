"""The model versions the warehouse knows: their metrics, which one is promoted, an optional
pin, and the one the views report (``v_current_model``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from ser_pipeline.warehouse.connection import transaction
from ser_pipeline.warehouse.loads import _json


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
