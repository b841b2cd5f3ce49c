"""Prefect task options shared by both flows: retries for steps that read the object store,
the tag that keeps warehouse writers apart."""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from ser_pipeline.errors import SerError

WAREHOUSE_WRITER = "warehouse-writer"  # a tag concurrency limit of 1 keeps DuckDB writers apart


def retry_unless_ours(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what a second try may fix (the object store failing, a timeout), not the errors
    this package raises on purpose (no champion, a spec mismatch): those fail at once."""
    return not isinstance(state.result(raise_on_failure=False), SerError)


READS_STORE: dict[str, Any] = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5),
                                   retry_jitter_factor=0.5, retry_condition_fn=retry_unless_ours)
WRITES_WAREHOUSE: dict[str, Any] = dict(tags=[WAREHOUSE_WRITER])
