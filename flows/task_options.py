"""Prefect task options shared by both flows, and the one table that says which library step
gets which: retries for steps that read the object store, the tag that keeps warehouse
writers apart. A flow hands :func:`as_task` to its run as ``step``, so each library function
runs as its own task, recognised by the function itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from ser_pipeline.errors import SerError
from ser_pipeline.runs import nightly
from ser_pipeline.runs import retrain
from ser_pipeline.runs.steps import step_name

WAREHOUSE_WRITER = "warehouse-writer"  # a tag concurrency limit of 1 keeps DuckDB writers apart


def retry_unless_ours(task: Any, task_run: Any, state: Any) -> bool:
    """Retry what a second try may fix (the object store failing, a timeout), not the errors
    this package raises on purpose (no champion, a spec mismatch): those fail at once."""
    return not isinstance(state.result(raise_on_failure=False), SerError)


READS_STORE: dict[str, Any] = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5),
                                   retry_jitter_factor=0.5, retry_condition_fn=retry_unless_ours)
WRITES_WAREHOUSE: dict[str, Any] = dict(tags=[WAREHOUSE_WRITER])

# Task options per library step; a step not named here runs with Prefect's defaults.
TASK_OPTIONS: dict[Callable[..., Any], dict[str, Any]] = {
    nightly.start_run: WRITES_WAREHOUSE,
    nightly.discover: READS_STORE,
    nightly.load_surveys: WRITES_WAREHOUSE,
    nightly.load_trained_model: READS_STORE,
    nightly.plan: READS_STORE,
    nightly.label_batch: READS_STORE,
    nightly.load_batch: WRITES_WAREHOUSE,
    nightly.record_quarantine: WRITES_WAREHOUSE,
    nightly.record_warnings: WRITES_WAREHOUSE,
    nightly.record_validations: WRITES_WAREHOUSE,
    nightly.finish: WRITES_WAREHOUSE,
    retrain.load_training_set: READS_STORE,
    retrain.register: WRITES_WAREHOUSE,  # records the model version in DuckDB
}
_TASKS: dict[Callable[..., Any], Any] = {}


def as_task(fn: Callable[..., Any]) -> Any:
    """The Prefect task wrapping the library function ``fn`` itself (made once per function;
    named after it). Inputs are settings, models and arrays: nothing worth caching."""
    if fn not in _TASKS:
        _TASKS[fn] = task(fn, name=step_name(fn), cache_policy=NO_CACHE, **TASK_OPTIONS.get(fn, {}))
    return _TASKS[fn]
