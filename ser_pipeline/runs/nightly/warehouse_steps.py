"""The nightly run's writes to the warehouse: its start (and the clean-up after dead runs), the
surveys, each batch's utterances and predictions, what was set aside, the suites' results and
the run's outcome. Each opens its own short write transaction, keyed, so a repeat inserts
nothing twice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from ser_pipeline.runs.nightly.records import (
    Batch, BatchLoad, BatchPredictions, NightlyReport, Quarantined, RecordingWarning, RunStart, Stopwatch,
)
from ser_pipeline.settings import Settings
from ser_pipeline.validation import ValidationResult

FLOW_NAME = "label-new-audio"


@contextmanager
def _writing(settings: Settings) -> Iterator[Any]:
    from ser_pipeline import warehouse

    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        yield con


def start_run(settings: Settings, flow_run_id: str | None = None, run_id: str | None = None) -> RunStart:
    """Record the start of an ingest run in the warehouse (migrating it first), then clean up
    after runs that were killed mid-way (``run_recovery``)."""
    from ser_pipeline import warehouse
    from ser_pipeline.runs.recovery import recover_abandoned

    with _writing(settings) as con:
        run_id = warehouse.start_ingest_run(con, flow_run_id=flow_run_id, flow_name=FLOW_NAME, run_id=run_id)
        return RunStart(run_id, recover_abandoned(settings, run_id, con))


def record_quarantine(settings: Settings, items: Sequence[Quarantined], run_id: str) -> int:
    """Write set-aside inputs to the warehouse's quarantine table (idempotent per input)."""
    from ser_pipeline import warehouse

    if not items:
        return 0
    rows = [{"stage": q.stage, "source": q.source, "reason": q.reason, "content_hash": q.content_hash} for q in items]
    with _writing(settings) as con:
        return warehouse.quarantine(con, rows, run_id=run_id)


def record_warnings(settings: Settings, items: Sequence[RecordingWarning], run_id: str) -> int:
    """Write recordings labelled with a caveat to the warehouse's recording_warnings table
    (one row per kind, recording and content; a re-run updates it)."""
    from dataclasses import asdict

    from ser_pipeline import warehouse

    if not items:
        return 0
    with _writing(settings) as con:
        return warehouse.record_warnings(con, [asdict(w) for w in items], run_id=run_id)


def record_validations(settings: Settings, results: Sequence[tuple[str, ValidationResult]], run_id: str) -> None:
    """Store GX results (one row per suite and target) in the warehouse."""
    from ser_pipeline import warehouse

    if not results:
        return
    with _writing(settings) as con:
        for target, result in results:
            warehouse.record_validation(
                con, result.suite, target, result.success, n_expectations=result.evaluated,
                n_failed=len(result.failed), details=result.to_dict(), run_id=run_id,
            )


def load_surveys(settings: Settings, surveys: Sequence[Any]) -> int:
    """Load each survey's sessions and participants; returns the sessions newly inserted."""
    from ser_pipeline import warehouse

    key = settings.pseudonym_key.get_secret_value()
    inserted = 0
    with _writing(settings) as con:
        for survey in surveys:
            inserted += warehouse.load_survey(con, survey, key=key).inserted
    return inserted


def load_batch(settings: Settings, batch: Batch, predictions: BatchPredictions, run_id: str,
               transcripts: Any = None) -> BatchLoad:
    """Load the batch's utterances, then their predictions and transcripts (a
    ``transcripts.batch.BatchTranscripts`` or None; each loader one transaction, keyed, so a
    repeat inserts nothing twice). Only utterances that have a prediction are loaded."""
    from ser_pipeline import warehouse

    clock = Stopwatch()
    predicted = set(predictions.frame["utterance_id"])
    utterances = pd.DataFrame([
        {"utterance_id": u.utterance_id, "session_id": u.session_id, "participant_id": u.participant_id,
         "start_s": u.start_s, "end_s": u.end_s, "source_uri": u.source_uri, "content_hash": u.utterance_id,
         "question": u.question}
        for u in batch.utterances if u.utterance_id in predicted
    ], columns=["utterance_id", "session_id", "participant_id", "start_s", "end_s", "source_uri", "content_hash", "question"])
    key = settings.pseudonym_key.get_secret_value()
    with _writing(settings) as con:
        loaded_u = warehouse.load_utterances(con, utterances, key=key)
        loaded_p = warehouse.load_predictions(con, predictions.frame, run_id=run_id)
        loaded_t = warehouse.load_transcripts(con, transcripts.frame[transcripts.frame["utterance_id"].isin(predicted)],
                                              run_id=run_id) if transcripts is not None else None
        warehouse.heartbeat(con, run_id)
    return BatchLoad(batch.index, loaded_u.inserted, loaded_p.inserted,
                     loaded_u.quarantined + loaded_p.quarantined + (loaded_t.quarantined if loaded_t else 0), clock.elapsed,
                     loaded_t.inserted if loaded_t else 0)


def finish(settings: Settings, report: NightlyReport) -> None:
    """Record the run's outcome and counts in the warehouse."""
    from ser_pipeline import warehouse

    message = report.error or ("; ".join(f"{r.suite} failed on {t}" for t, r in report.validations if not r.success) or None)
    with _writing(settings) as con:
        warehouse.finish_ingest_run(
            con, report.run_id, status=report.status, n_sessions=report.sessions,
            n_utterances=report.utterances_loaded, n_predictions=report.predictions_loaded,
            n_quarantined=len(report.quarantined), message=message,
        )
