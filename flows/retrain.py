"""The ``weekly-retrain`` deployment: retrain on the training corpora, promote only if better.

Wiring only: each step of :func:`ser_pipeline.runs.retrain.train_and_register` (the same path
``ser train`` takes) runs as one Prefect task; the metrics table and confusion matrix become a
markdown artifact. The recipe's defaults are ``TrainConfig``'s.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from ser_pipeline.runs import retrain as retraining
from ser_pipeline.settings import Settings, get_settings
from ser_pipeline.training.fit import TrainConfig

from flows.task_options import as_task

_DEFAULTS = TrainConfig()


@flow(name="retrain-model", log_prints=True)
def retrain_model(
    corpus_urls: dict[str, str],
    epochs: int = _DEFAULTS.epochs,
    label_merge: str = _DEFAULTS.label_merge,
    promote: bool = True,
    architecture: str = _DEFAULTS.architecture,
    normalization: str = _DEFAULTS.normalization,
    input_kind: str = _DEFAULTS.input_kind,
    corrupted_copies: int = _DEFAULTS.corrupted_copies,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Train on ``corpus_urls`` (``{corpus name: url}``), evaluate on held-out speakers,
    register; promote when ``promote`` and the UAR beats the champion's. The defaults are the
    recommended recipe (``TrainConfig``); ``architecture="seed"``, ``input_kind="mfcc"`` and
    ``normalization="global"`` give the seed's reference CNN. ``settings`` None: the
    environment's (``SER_*``), for a deployment's run."""
    settings = settings if settings is not None else get_settings()
    chosen = dict(epochs=epochs, label_merge=label_merge, architecture=architecture, normalization=normalization,
                  input_kind=input_kind, corrupted_copies=corrupted_copies)
    config = TrainConfig(**{f.name: chosen.get(f.name, getattr(_DEFAULTS, f.name)) for f in fields(TrainConfig)})
    run = retraining.train_and_register(settings, corpus_urls, config, promote_if_better=promote, step=as_task)
    registration, metrics = run.registration, run.metrics
    create_markdown_artifact(key="weekly-retrain-report", markdown=retraining.retraining_markdown(registration, metrics, run.training_set),
                             description=f"Model {registration.version}: {registration.reason}")
    return {"version": registration.version, "promoted": registration.promoted, "reason": registration.reason,
            "uar": metrics.get("uar"), "accuracy": metrics.get("accuracy")}
