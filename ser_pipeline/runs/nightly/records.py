"""What one nightly run passes between its steps and reports: plain frozen dataclasses, small
enough to travel to a Dask worker and back, and the run's :class:`NightlyReport`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.validation import ValidationResult

# Suites that judge the archive's inputs: their failures set inputs aside (quarantine), they
# do not fail the run as a failed features or predictions suite does.
INPUT_SUITES = frozenset({"manifest"})


@dataclass(frozen=True)
class RunStart:
    run_id: str
    recovery: Any  # run_recovery.Recovery: runs found dead and marked abandoned, temp files removed


@dataclass(frozen=True)
class Quarantined:
    """An input the run set aside, and why (mirrors a row of the warehouse's quarantine)."""

    stage: str  # "manifest", "audio", "features", ...
    source: str
    reason: str
    content_hash: str | None = None


@dataclass(frozen=True)
class RecordingWarning:
    """A recording labelled with a caveat (mirrors a row of the warehouse's recording_warnings):
    a WAV cut off mid-way is labelled up to where it decodes, and this says how much was
    declared and found."""

    kind: str  # "truncated", "trailing_bytes" (audio.ContainerDefect.kind)
    source: str
    session_id: str
    message: str
    declared_s: float | None = None
    found_s: float | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover` found: readable surveys, and what it set aside."""

    surveys: tuple[Any, ...]  # manifest.Survey
    quarantined: tuple[Quarantined, ...] = ()
    validations: tuple[tuple[str, ValidationResult], ...] = ()  # (target, result)
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to label: where its audio is and who speaks."""

    utterance_id: str
    survey_id: str
    session_id: str
    participant_id: str | None
    start_s: float
    end_s: float
    question: str | None
    source_uri: str
    language: str | None = None  # the manifest's, for transcripts; None: detected


@dataclass(frozen=True)
class Batch:
    """Whole sessions' pending utterances, labelled and loaded together."""

    index: int
    utterances: tuple[PlannedUtterance, ...]

    @property
    def sessions(self) -> list[str]:
        return list(dict.fromkeys(u.session_id for u in self.utterances))


@dataclass(frozen=True)
class Plan:
    batches: tuple[Batch, ...]
    recordings_seen: int
    recordings_skipped: int  # every utterance already labelled by this model
    utterances_total: int
    utterances_pending: int
    quarantined: tuple[Quarantined, ...] = ()
    elapsed_s: float = 0.0
    warnings: tuple[RecordingWarning, ...] = ()  # recordings with pending utterances labelled with a caveat


@dataclass(frozen=True)
class BatchFeatures:
    """Windows of a batch: ``keys`` (one row per window) and ``{family: (n, rows, frames)}``."""

    batch: Batch
    keys: pd.DataFrame
    feats: dict[str, np.ndarray]
    spec: Any  # features.FeatureSpec
    store_file: str | None
    quarantined: tuple[Quarantined, ...] = ()
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: decode + resample, features, feature store


@dataclass(frozen=True)
class BatchPredictions:
    """Per-utterance predictions of a batch in the warehouse's layout (ARCHITECTURE.md)."""

    frame: pd.DataFrame
    proba: np.ndarray  # (n_utterances, K) in ``labels`` order
    labels: tuple[str, ...]
    model_version: str
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class BatchLoad:
    batch_index: int
    utterances_inserted: int
    predictions_inserted: int
    quarantined: int
    elapsed_s: float = 0.0
    transcripts_inserted: int = 0


@dataclass
class NightlyReport:
    """Everything the run did, for the warehouse's ingest run and the markdown artifact."""

    run_id: str
    model_version: str | None = None
    surveys: int = 0
    sessions: int = 0
    recordings_seen: int = 0
    recordings_skipped: int = 0
    utterances_total: int = 0
    utterances_pending: int = 0
    utterances_loaded: int = 0
    predictions_loaded: int = 0
    batches: int = 0
    batches_failed: int = 0
    emotion_counts: Counter = field(default_factory=Counter)
    quarantined: list[Quarantined] = field(default_factory=list)
    validations: list[tuple[str, ValidationResult]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    abandoned_runs: list[str] = field(default_factory=list)  # earlier runs found dead at the start
    temp_files_removed: int = 0
    warnings: list[RecordingWarning] = field(default_factory=list)  # labelled with a caveat
    transcribe: bool = False  # SER_TRANSCRIBE: the run writes transcripts
    transcripts_loaded: int = 0
    transcripts_empty: Counter = field(default_factory=Counter)  # reason -> utterances stored empty (new rows)

    @property
    def failed(self) -> bool:
        """A batch not loaded or the run stopped. A failed manifest suite only sets its
        survey or sessions aside (quarantine: the run is ``partial``), like a bad recording."""
        return self.batches_failed > 0 or self.error is not None or any(
            not r.success for _, r in self.validations if r.suite not in INPUT_SUITES)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        return "partial" if self.quarantined or self.warnings else "completed"

    def add_time(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + float(seconds)

    def add_discovery(self, found: Discovery) -> None:
        """Count what step 1 found: surveys, set-aside inputs, the manifest suites' results."""
        self.add_time("discover", found.elapsed_s)
        self.quarantined.extend(found.quarantined)
        self.validations.extend(found.validations)
        self.surveys = len(found.surveys)

    def add_plan(self, planned: Plan) -> None:
        """Count what step 3 planned: recordings seen and skipped, utterances, batches."""
        self.add_time("hash + segment", planned.elapsed_s)
        self.sessions = planned.recordings_seen
        self.recordings_seen = planned.recordings_seen
        self.recordings_skipped = planned.recordings_skipped
        self.utterances_total = planned.utterances_total
        self.utterances_pending = planned.utterances_pending
        self.batches = len(planned.batches)
        self.quarantined.extend(planned.quarantined)
        self.warnings.extend(planned.warnings)

    def add_labelled(self, labelled: LabelledBatch) -> None:
        """Count a labelled batch's timings, set-aside inputs and suite results."""
        for stage, seconds in labelled.timings.items():
            self.add_time(stage, seconds)
        self.quarantined.extend(labelled.quarantined)
        self.validations.extend(labelled.validations)
        if not labelled.loadable:
            self.batches_failed += 1

    def add_load(self, loaded: BatchLoad, labelled: LabelledBatch) -> None:
        """Count a batch's load: rows inserted, the emotion mix of its new predictions."""
        self.add_time("load", loaded.elapsed_s)
        self.utterances_loaded += loaded.utterances_inserted
        self.predictions_loaded += loaded.predictions_inserted
        if loaded.predictions_inserted and labelled.predictions is not None:
            self.emotion_counts.update(labelled.predictions.frame["label"])
        self.transcripts_loaded += loaded.transcripts_inserted
        if loaded.transcripts_inserted and labelled.transcripts is not None:
            self.transcripts_empty.update(labelled.transcripts.empty_reasons())

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "model_version": self.model_version,
            "surveys": self.surveys,
            "sessions": self.sessions,
            "recordings_seen": self.recordings_seen,
            "recordings_skipped": self.recordings_skipped,
            "utterances_pending": self.utterances_pending,
            "utterances_loaded": self.utterances_loaded,
            "predictions_loaded": self.predictions_loaded,
            "batches": self.batches,
            "batches_failed": self.batches_failed,
            "quarantined": len(self.quarantined),
            "warnings": len(self.warnings),
            "abandoned_runs": len(self.abandoned_runs),
            "temp_files_removed": self.temp_files_removed,
            "emotions": dict(self.emotion_counts),
            **({"transcripts_loaded": self.transcripts_loaded, "transcripts_empty": dict(self.transcripts_empty)}
               if self.transcribe else {}),
        }


class Stopwatch:
    """Seconds since it was made (``elapsed``), for the report's time per stage."""


    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@dataclass(frozen=True)
class LabelledBatch:
    """One batch featurised, predicted and validated, ready to load. Small on purpose (no
    feature arrays: those are in the store), so it travels cheaply back from a Dask worker."""

    batch: Batch
    predictions: BatchPredictions | None  # None when the features suite failed
    validations: tuple[tuple[str, ValidationResult], ...]
    quarantined: tuple[Quarantined, ...]
    timings: dict[str, float]
    transcripts: Any = None  # transcripts.batch.BatchTranscripts; None when SER_TRANSCRIBE is off or nothing was labelled

    @property
    def loadable(self) -> bool:
        return self.predictions is not None and all(r.success for _, r in self.validations)
