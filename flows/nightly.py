"""The ``nightly-labeling`` deployment: label new survey audio and load the warehouse.

Wiring only: each step of :func:`ser_pipeline.runs.nightly.run_nightly` runs as one Prefect task
(retries with exponential backoff where it reads the object store; the
``warehouse-writer`` tag on every step that writes DuckDB, so a tag concurrency limit of 1
keeps writers apart). The file-level work, one ``label-batch`` task per batch of whole
sessions (decode, features, inference, validation), is submitted to the flow's task runner,
a Dask cluster (:func:`~flows.dask_runner.task_runner`), so batches run side by side; loads
stay in the flow, one batch at a time. The run's report becomes a markdown artifact, and the
flow run ends Failed when a validation suite failed or the run stopped on an error: the flow
raises :class:`~ser_pipeline.errors.NightlyRunFailed` (its message is the run's error, its
``summary`` the report's), so a direct call raises it and ``return_state=True`` returns the
Failed state.

Which cluster (docs/SCALE.md): called from Python anywhere (a script with or without an
``if __name__ == "__main__":`` guard, ``python -c``, standard input, a notebook, a test), a
local cluster of threads in the calling process, and a deployment's run too
(``SER_DASK_PROCESSES: "false"`` in ``prefect.yaml``, the faster of the two on 2 cores);
worker processes with ``SER_DASK_PROCESSES=true``; the running cluster at
``SER_DASK_ADDRESS`` when set. A cluster that cannot start within
``SER_DASK_START_TIMEOUT_S`` fails the run at once with
:class:`~ser_pipeline.errors.ClusterStartFailed`. Importing ``flows`` keeps such a call quiet:
warnings and errors only (see ``flows/__init__.py``).

Settings are resolved here, at the edge, and passed down: a caller holding a ``Settings``
calls :func:`nightly_flow` (the flow on that settings' Dask runner) with ``settings=``; a
direct call without settings and a deployment's run get the process's ``SER_*`` environment,
read when the run starts (its Dask runner too), never when this module is imported.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect_dask import DaskTaskRunner

from ser_pipeline.runs import nightly
from ser_pipeline.errors import NightlyRunFailed
from ser_pipeline.settings import Settings, get_settings

from flows.dask_runner import task_runner
from flows.task_options import as_task


def label_batches_on_runner(settings: Settings, batches: Any, model_or_version: nightly.ModelOrVersion) -> Any:
    """Submit one ``label-batch`` task per batch to the flow's task runner; yield each result
    as it completes (the flow loads it while the other batches are still being labelled).
    ``model_or_version``: what :func:`~ser_pipeline.runs.nightly.label_batch` takes (the run
    hands a task runner the model's registry version)."""
    from prefect.futures import as_completed

    futures = [as_task(nightly.label_batch).submit(settings, batch, model_or_version) for batch in batches]
    for future in as_completed(futures):
        yield future.result()


class _DaskFromEnvironment(DaskTaskRunner):
    """The runner of a run given no runner (a direct call, a deployment's run): :func:`task_runner`
    of the environment's settings, built when the run starts (Prefect duplicates the flow's
    runner then), not at import."""

    def duplicate(self) -> Any:
        return task_runner(get_settings())


def nightly_flow(settings: Settings) -> Any:
    """:func:`label_new_audio` on ``settings``' Dask runner; call it with ``settings=settings``."""
    return label_new_audio.with_options(task_runner=task_runner(settings))


@flow(name="label-new-audio", log_prints=True, task_runner=_DaskFromEnvironment())
def label_new_audio(
    archive_url: str | None = None,
    warehouse: str | None = None,
    model: str = "champion",
    batch_size: int | None = None,
    settings: Settings | None = None,
):
    """Label utterances of new recordings under ``archive_url`` with ``model`` and load them into
    the DuckDB ``warehouse`` (None: ``settings.archive_url`` / ``settings.warehouse_path``).
    ``settings`` None: the environment's (``SER_*``), for a deployment's run."""
    settings = settings if settings is not None else get_settings()
    report = nightly.run_nightly(
        archive_url, warehouse, model, batch_size,
        settings=settings,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        step=as_task,
        label_batches=label_batches_on_runner,
    )
    create_markdown_artifact(
        key="nightly-labeling-report",
        markdown=nightly.nightly_markdown(report),
        description=f"Nightly labeling run {report.run_id}: {report.status}",
    )
    summary = report.summary()
    print(summary)
    if report.failed:
        raise NightlyRunFailed(f"nightly labeling run {report.run_id} failed: {report.error or 'a validation suite failed'}", summary)
    return summary


if __name__ == "__main__":
    label_new_audio()
