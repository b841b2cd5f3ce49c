"""The ``weekly-retrain`` deployment: retrain on the training corpora, promote only if better.

Wiring only: each step of :func:`ser_pipeline.retraining.run_retraining` runs as one Prefect
task; the metrics table and confusion matrix become a markdown artifact.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from ser_pipeline import retraining

_STEPS = {
    "corpus-features": retraining.corpus_features,
    "train": retraining.train_candidate,
    "evaluate": retraining.evaluate_candidate,
    "register": retraining.register_candidate,
}


def _as_task(name: str, fn: Any) -> Any:
    options: dict[str, Any] = {"name": name, "cache_policy": NO_CACHE}
    if name == "corpus-features":  # reads the object store
        options.update(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5)
    if name == "register":  # records the model version in DuckDB
        options["tags"] = ["warehouse-writer"]
    return task(fn, **options)


TASKS = {name: _as_task(name, fn) for name, fn in _STEPS.items()}


@flow(name="retrain-model", log_prints=True)
def retrain_model(
    corpus_urls: dict[str, str],
    epochs: int = 40,
    label_merge: str = "calm=neutral",
    promote: bool = True,
    architecture: str = "seed",
    normalization: str = "global",
    input_kind: str | None = None,
) -> dict[str, Any]:
    """Train on ``corpus_urls`` (``{corpus name: url}``), evaluate on held-out speakers,
    register; promote when ``promote`` and the UAR beats the champion's. ``architecture``
    "seed" (the reference CNN) or "pooled"; ``normalization`` "global" or "speaker";
    ``input_kind`` "mfcc" or "stacked" (None: SER_MODEL_INPUT)."""
    registration, metrics, markdown = retraining.run_retraining(
        corpus_urls, epochs, label_merge, promote, architecture=architecture,
        normalization=normalization, input_kind=input_kind, step=lambda name, fn: TASKS[name],
    )
    create_markdown_artifact(key="weekly-retrain-report", markdown=markdown,
                             description=f"Model {registration.version}: {registration.reason}")
    return {"version": registration.version, "promoted": registration.promoted, "reason": registration.reason,
            "uar": metrics.get("uar"), "accuracy": metrics.get("accuracy")}
