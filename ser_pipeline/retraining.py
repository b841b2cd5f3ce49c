"""The weekly retraining run as plain functions: corpora in, a registered (maybe promoted) model out.

``flows/retrain.py`` runs each step as one Prefect task; :func:`run_retraining` runs them in
order for a notebook. Steps: :func:`corpus_features` (featurise the training corpora into
the Parquet store, skipping what it holds, then read the windows back), :func:`train_candidate`
(speaker-independent split, train), :func:`evaluate_candidate` (on the held-out speakers,
window probabilities averaged per utterance), :func:`register_candidate` (registry, the
warehouse's model versions; promoted only when its UAR beats the champion's on the same test
speakers), :func:`render_markdown` (metrics table and confusion matrix).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .settings import Settings, get_settings

Step = Callable[[str, Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class CorpusData:
    """Training windows: ``keys`` (one row per window: utterance_id, speaker, emotion, ...) and
    ``{family: (n, rows, frames)}``; ``extracted`` counts the windows featurised this run."""

    keys: pd.DataFrame
    feats: dict[str, np.ndarray]
    spec: Any
    extracted: int
    failures: tuple[str, ...]
    elapsed_s: float


@dataclass(frozen=True)
class Candidate:
    trained: Any  # training.TrainedModel
    split: Any  # splits.Split over CorpusData.keys rows
    elapsed_s: float


@dataclass(frozen=True)
class Registration:
    version: str
    promoted: bool
    reason: str


def corpus_features(settings: Settings, corpus_urls: Mapping[str, str], families: tuple[str, ...] = ("mfcc", "chroma", "mel", "contrast")) -> CorpusData:
    """Features of every clip of the corpora ``{name: url}`` (names as ``corpora.read_corpus``
    takes them), extracted only when the store lacks them."""
    from .corpora import read_corpus
    from .extraction import featurize
    from .feature_store import read_features
    from .features import FeatureSpec

    if not corpus_urls:
        raise ValueError("no training corpora given: pass corpus_urls, e.g. {'ravdess': 's3://corpora/ravdess'}")
    start = time.perf_counter()
    spec = FeatureSpec.from_settings(settings)
    items = [item for name, url in corpus_urls.items() for item in read_corpus(name, url)]
    summary = featurize(items, settings.feature_store_url, spec, workers=settings.workers, progress=False, settings=settings)
    sources = sorted({item.corpus for item in items})
    keys, feats = read_features(settings.feature_store_url, spec, sources=sources, families=families, settings=settings)
    wanted = keys["utterance_id"].isin({item.utterance_id for item in items}).to_numpy()
    keys = keys.loc[wanted].reset_index(drop=True)
    feats = {f: a[wanted] for f, a in feats.items()}
    failures = tuple(f"{f.path}: {f.reason}" for f in summary.failures)
    return CorpusData(keys, feats, spec, summary.rows_written, failures, time.perf_counter() - start)


def train_candidate(data: CorpusData, label_merge: str = "calm=neutral", epochs: int = 40, input_kind: str = "mfcc",
                    architecture: str = "seed", seed: int = 0, normalization: str = "global") -> Candidate:
    """Train on a speaker-independent split of ``data`` (no speaker in two parts)."""
    from .labels import LabelSet, parse_merge
    from .splits import speaker_split
    from .training import TrainConfig, train

    start = time.perf_counter()
    labels = LabelSet.from_merge(parse_merge(label_merge))
    split = speaker_split(data.keys, seed=seed)
    config = TrainConfig(architecture=architecture, input_kind=input_kind, normalization=normalization, epochs=epochs, seed=seed)
    trained = train(data.feats, data.keys["emotion"], data.keys["speaker"], split, labels, data.spec.hash, config,
                    utterance_ids=data.keys["utterance_id"], progress=None)
    return Candidate(trained, split, time.perf_counter() - start)


def evaluate_candidate(candidate: Candidate, data: CorpusData) -> dict[str, Any]:
    """Metrics on the held-out test speakers, one row per utterance (windows averaged)."""
    from .evaluation import evaluate
    from .inference import predict_proba

    test = np.asarray(candidate.split.test)
    keys = data.keys.iloc[test].reset_index(drop=True)
    proba = predict_proba(candidate.trained, {f: a[test] for f, a in data.feats.items()}, list(keys["speaker"]),
                          data.spec, utterance_ids=list(keys["utterance_id"]))
    first = keys.drop_duplicates("utterance_id")
    labels = candidate.trained.labels
    y_true = labels.indices(first["emotion"])
    groups = {c: list(first[c]) for c in ("corpus", "gender") if c in first and first[c].notna().all()}
    return evaluate(y_true, proba, labels.labels, groups)


def register_candidate(settings: Settings, candidate: Candidate, metrics: Mapping[str, Any], promote: bool = True) -> Registration:
    """Save the model in the registry and the warehouse's model versions; promote it only if
    ``promote`` and its UAR beats the champion's on the same test speakers."""
    from . import registry, warehouse

    version = registry.save_model(candidate.trained, dict(metrics), settings.registry_url, settings=settings)
    promoted, reason = registry.promote_if_better(version, settings.registry_url, settings) if promote else (False, "promotion disabled")
    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        warehouse.record_model_version(con, version, metrics={k: metrics.get(k) for k in ("uar", "accuracy", "ece", "n")},
                                       labels=candidate.trained.labels.labels, feature_spec=candidate.trained.feature_spec_hash)
        if promoted:
            warehouse.promote_model(con, version)
    return Registration(version, promoted, reason)


def render_markdown(registration: Registration, metrics: Mapping[str, Any], data: CorpusData | None = None) -> str:
    """Metrics table (overall and per class) and the confusion matrix, as markdown."""
    labels = list(metrics.get("labels", []))
    lines = [
        f"# Retraining: model `{registration.version}`",
        "",
        f"**{'Promoted to champion' if registration.promoted else 'Not promoted'}**: {registration.reason}.",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| test utterances | {metrics.get('n')} |",
        f"| UAR | {metrics.get('uar', float('nan')):.3f} |",
        f"| accuracy | {metrics.get('accuracy', float('nan')):.3f} |",
        f"| macro F1 | {metrics.get('macro', {}).get('f1', float('nan')):.3f} |",
        f"| ECE | {metrics.get('ece', float('nan')):.3f} |",
    ]
    if data is not None:
        lines.append(f"| training windows (extracted this run) | {len(data.keys)} ({data.extracted}) |")
    lines += ["", "## Per class", "", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label in labels:
        m = metrics.get("per_class", {}).get(label, {})
        lines.append(f"| {label} | {m.get('precision', 0):.3f} | {m.get('recall', 0):.3f} | {m.get('f1', 0):.3f} | {m.get('support', 0)} |")
    matrix = metrics.get("confusion_matrix")
    if matrix:
        lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
                  "| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
        lines += [f"| {label} | " + " | ".join(str(v) for v in row) + " |" for label, row in zip(labels, matrix)]
    for name, group in metrics.get("groups", {}).items():
        gap = group["largest_gap"]["uar"]
        lines += ["", f"UAR gap across {name}: {gap['gap']:.3f} (best {gap['best']}, worst {gap['worst']})."]
    return "\n".join(lines) + "\n"


def run_retraining(
    corpus_urls: Mapping[str, str],
    epochs: int = 40,
    label_merge: str = "calm=neutral",
    promote: bool = True,
    *,
    architecture: str = "seed",
    normalization: str = "global",
    input_kind: str | None = None,
    settings: Settings | None = None,
    step: Step | None = None,
) -> tuple[Registration, dict[str, Any], str]:
    """Featurise, train, evaluate, register (and maybe promote); returns the registration, the
    test metrics and the markdown report."""
    call = step or (lambda _name, fn: fn)
    settings = settings or get_settings()
    data = call("corpus-features", corpus_features)(settings, dict(corpus_urls))
    candidate = call("train", train_candidate)(data, label_merge, epochs, input_kind or settings.model_input, architecture,
                                               normalization=normalization)
    metrics = call("evaluate", evaluate_candidate)(candidate, data)
    registration = call("register", register_candidate)(settings, candidate, metrics, promote)
    return registration, metrics, render_markdown(registration, metrics, data)
