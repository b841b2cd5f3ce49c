"""One night, step by step: :func:`run_nightly` calls the steps of the modules beside it in order
(see the package docstring), without Prefect; ``flows/nightly.py`` hands it a ``step`` that
wraps each step in a Prefect task, and a ``label_batches`` that spreads the batches over its
task runner."""

from __future__ import annotations

from ser_pipeline.errors import SerError
from ser_pipeline.runs.nightly.discovery import discover
from ser_pipeline.runs.nightly.labelling import LabelBatches, label_batches_in_order, load_trained_model, transcription_model
from ser_pipeline.runs.nightly.planning import plan
from ser_pipeline.runs.nightly.records import NightlyReport, Stopwatch
from ser_pipeline.runs.nightly.warehouse_steps import (
    finish, load_batch, load_surveys, record_quarantine, record_validations, record_warnings, start_run,
)
from ser_pipeline.runs.steps import Step, run_as_is
from ser_pipeline.settings import Settings, override


def run_settings(
    settings: Settings,
    archive_url: str | None = None,
    warehouse: str | None = None,
    batch_size: int | None = None,
) -> Settings:
    """The settings of one run: the caller's with the run's parameters applied."""
    from pathlib import Path

    return override(settings, archive_url=archive_url,
                    warehouse_path=Path(warehouse) if warehouse else None, batch_size=batch_size)


def run_nightly(
    archive_url: str | None = None,
    warehouse: str | None = None,
    model: str = "champion",
    batch_size: int | None = None,
    *,
    settings: Settings,
    run_id: str | None = None,
    flow_run_id: str | None = None,
    step: Step = run_as_is,
    label_batches: LabelBatches | None = None,
) -> NightlyReport:
    """Label every new utterance of the archive and load the warehouse (see module docstring).

    Returns the report; ``report.failed`` is True when a validation suite failed (that batch
    was not loaded) or the run stopped on an error. ``step(fn)`` may wrap each step
    (``flows/nightly.py`` passes one that returns the function's Prefect task).
    ``label_batches`` labels the planned batches (default :func:`label_batches_in_order`, here,
    one after the other); the flow passes one that submits :func:`label_batch` per batch to
    its task runner (threads, or a Dask cluster) and yields results as they complete. Loading
    stays here, one batch at a time.
    """
    settings = run_settings(settings, archive_url, warehouse, batch_size)
    started = step(start_run)(settings, flow_run_id=flow_run_id, run_id=run_id)
    report = NightlyReport(run_id=started.run_id, abandoned_runs=list(started.recovery.abandoned_runs),
                           temp_files_removed=len(started.recovery.temp_files_removed))
    try:
        found = step(discover)(settings)
        report.add_discovery(found)
        clock = Stopwatch()
        step(load_surveys)(settings, found.surveys)
        report.add_time("load", clock.elapsed)
        clock = Stopwatch()
        trained = step(load_trained_model)(settings, model)
        report.model_version = str(trained.version)
        report.add_time("load model", clock.elapsed)
        report.transcribe = settings.transcribe
        transcriber = step(transcription_model)(settings) if settings.transcribe else None
        planned = step(plan)(settings, found.surveys, report.model_version, transcriber=transcriber)
        report.add_plan(planned)
        # In this process the loaded model is handed over; a task runner gets its version.
        model_or_version = trained if label_batches is None else report.model_version
        for labelled in (label_batches or label_batches_in_order)(settings, planned.batches, model_or_version):
            report.add_labelled(labelled)
            if labelled.loadable:
                loaded = step(load_batch)(settings, labelled.batch, labelled.predictions, report.run_id, labelled.transcripts)
                report.add_load(loaded, labelled)
    except SerError as exc:  # expected failures (no champion, warehouse busy, spec mismatch): recorded, run fails
        report.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug: recorded as a failed run, then raised
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        step(record_quarantine)(settings, report.quarantined, report.run_id)
        step(record_warnings)(settings, report.warnings, report.run_id)
        step(record_validations)(settings, report.validations, report.run_id)
        step(finish)(settings, report)
    return report

