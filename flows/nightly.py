"""The ``nightly-labeling`` deployment: label new survey audio and load the warehouse.

Wiring only: each step of :func:`ser_pipeline.nightly.run_nightly` runs as one Prefect task
(retries with exponential backoff where it reads the object store; the
``warehouse-writer`` tag on every step that writes DuckDB, so a tag concurrency limit of 1
keeps writers apart). The run's report becomes a markdown artifact, and the flow run ends
Failed when a validation suite failed or the run stopped on an error.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.tasks import exponential_backoff

from ser_pipeline import nightly

WAREHOUSE_WRITER = "warehouse-writer"
_WRITES = {"start-run", "load-surveys", "load", "record-quarantine", "record-validations", "finish"}
_READS_STORE = {"discover", "plan", "featurise", "load-model"}

_STEPS = {
    "start-run": nightly.start_run,
    "discover": nightly.discover,
    "load-surveys": nightly.load_surveys,
    "load-model": nightly.load_trained_model,
    "plan": nightly.plan,
    "featurise": nightly.featurise_batch,
    "validate-features": nightly.validate_batch_features,
    "predict": nightly.predict_batch,
    "context": nightly.apply_context,
    "validate-predictions": nightly.validate_batch_predictions,
    "load": nightly.load_batch,
    "record-quarantine": nightly.record_quarantine,
    "record-validations": nightly.record_validations,
    "finish": nightly.finish,
}


def _as_task(name: str, fn: Any) -> Any:
    # Inputs are settings, models and arrays: nothing worth caching or hashing.
    options: dict[str, Any] = {"name": name, "cache_policy": NO_CACHE}
    if name in _WRITES:
        options["tags"] = [WAREHOUSE_WRITER]
    if name in _READS_STORE:
        options.update(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5)
    return task(fn, **options)


TASKS = {name: _as_task(name, fn) for name, fn in _STEPS.items()}


@flow(name="label-new-audio", log_prints=True)
def label_new_audio(
    archive_url: str | None = None,
    warehouse: str | None = None,
    model: str = "champion",
    batch_size: int | None = None,
):
    """Label utterances of new recordings under ``archive_url`` with ``model`` and load them into
    the DuckDB ``warehouse`` (None: ``SER_ARCHIVE_URL`` / ``SER_WAREHOUSE_PATH``)."""
    report = nightly.run_nightly(
        archive_url, warehouse, model, batch_size,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        step=lambda name, fn: TASKS[name],
    )
    create_markdown_artifact(
        key="nightly-labeling-report",
        markdown=nightly.render_markdown(report),
        description=f"Nightly labeling run {report.run_id}: {report.status}",
    )
    summary = report.summary()
    print(summary)
    if report.failed:
        return Failed(message=f"nightly labeling {report.status}: {report.error or 'a validation suite failed'}", data=summary)
    return summary


if __name__ == "__main__":
    label_new_audio()
