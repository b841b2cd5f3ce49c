"""The one path from corpora to a champion: load -> split -> fit -> evaluate -> register -> promote.

``ser train``, the weekly retraining flow (``flows/retrain.py``, one Prefect task per step),
cross-validation (``crossval.py``) and the tests' fixtures all call these functions, so a
model is trained, described and promoted the same way wherever it comes from:

- :func:`load_training_set`: the corpora's clips featurised into the Parquet store with the
  FeatureSpec the config's input kind needs (stored content is skipped), read back aligned;
- :func:`make_split`: speaker-independent (or, for comparison only, random) split;
- :func:`fit`: corrupted copies of the *training* clips (``TrainConfig.corrupted_copies``),
  then ``training.train``; the model carries its full FeatureSpec;
- :func:`evaluate_held_out`: metrics on the held-out speakers, windows averaged per utterance;
- :func:`register`: the registry and the warehouse's model versions together, promoted when
  its UAR beats the champion's on the same test speakers;
- :func:`promote`: make a version champion in the registry *and* the warehouse, so the
  nightly run and the analysts' views always agree on the model.

:func:`train_and_register` runs them in order (``step(fn)`` may wrap each one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ser_pipeline.runs.steps import Step, run_as_is
from ser_pipeline.settings import Settings



@dataclass(frozen=True)
class TrainingSet:
    """Labelled windows of the training corpora and the FeatureSpec they were made with."""

    data: Any  # dataset.LabelledSet
    spec: Any  # features.FeatureSpec
    elapsed_s: float


@dataclass(frozen=True)
class Registration:
    version: str
    promoted: bool
    reason: str


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`train_and_register` did."""

    training_set: TrainingSet
    split: Any  # splits.Split over the training set's windows
    trained: Any  # training.TrainedModel
    metrics: dict[str, Any]
    held_out: Any  # evaluation.held_out.HeldOut: the test utterances' predictions
    registration: Registration


def training_spec(settings: Settings, config: Any) -> Any:
    """The FeatureSpec a model of ``config`` is trained on: the encoder ``settings.encoder``
    names, or hand-made features at ``settings.sample_rate``."""
    from ser_pipeline.features.spec import FeatureSpec
    from ser_pipeline.training.networks import feature_spec_for

    if config.input_kind == "encoder":
        from ser_pipeline.features.encoder import encoder_spec

        return encoder_spec(settings)
    return feature_spec_for(config.input_kind, FeatureSpec.from_settings(settings))


def load_training_set(settings: Settings, corpus_urls: Mapping[str, str], config: Any, progress: bool = False) -> TrainingSet:
    """Featurise ``{corpus name: url}`` (names as ``corpora.read_corpus`` takes them) into the
    feature store and read the windows back with their labels."""
    from ser_pipeline.training.dataset import load_labelled
    from ser_pipeline.training.networks import INPUT_FAMILIES

    if not corpus_urls:
        raise ValueError("no training corpora given: pass corpus_urls, e.g. {'ravdess': 's3://corpora/ravdess'}")
    start = time.perf_counter()
    spec = training_spec(settings, config)
    data = load_labelled(dict(corpus_urls), spec, INPUT_FAMILIES[config.input_kind], settings=settings, progress=progress)
    if data.windows.empty:
        raise ValueError(f"no usable labelled audio in {dict(corpus_urls)}")
    return TrainingSet(data, spec, time.perf_counter() - start)


# The test share of the utterances: the speakers a new model is scored and promoted on.
TEST_SHARE = 0.1


def split_fractions(validation_share: float) -> tuple[float, float, float]:
    """Train / validation / test shares of the utterances for ``TrainConfig.validation_share``."""
    return (1.0 - TEST_SHARE - validation_share, validation_share, TEST_SHARE)


def make_split(training_set: TrainingSet, kind: str = "speaker", seed: int = 0,
               test_speakers: Sequence[str] | None = None, validation_share: float = 0.0) -> Any:
    """A split of the training set's *windows*, made over utterances: ``kind`` "speaker" (no
    speaker in two parts; ``test_speakers`` pins the test part) or "random" (leaks voices:
    comparison with the seed's protocol only, never promoted)."""
    from ser_pipeline.training.dataset import expand_split
    from ser_pipeline.training.splits import random_split, speaker_split

    utterances = training_set.data.utterances
    fractions = split_fractions(validation_share)
    if kind == "random":
        split = random_split(utterances, fractions, seed=seed)
    elif kind == "speaker":
        split = speaker_split(utterances, fractions, seed=seed, test_speakers=list(test_speakers) if test_speakers else None)
    else:
        raise ValueError(f"unknown split {kind!r}; choose 'speaker' or 'random'")
    return expand_split(split, utterances, training_set.data.windows)


def fit(training_set: TrainingSet, split: Any, config: Any, progress: Callable[[str], None] | None = None,
        audio_cache: dict[str, np.ndarray] | None = None, settings: Settings | None = None) -> Any:
    """Train on ``split.train`` (plus ``config.corrupted_copies`` corrupted copies of those
    clips), early-stop on ``split.val``; the TrainedModel. ``audio_cache`` keeps decoded clips
    between calls (cross-validation)."""
    from ser_pipeline.training.dataset import corrupted_copies
    from ser_pipeline.labels import LabelSet, parse_merge
    from ser_pipeline.training.fit import train

    data, spec = training_set.data, training_set.spec
    labels = LabelSet.from_merge(parse_merge(config.label_merge))
    extra = None
    if config.corrupted_copies > 0:
        extra = corrupted_copies(data, split.train, spec, config.corrupted_copies, config.seed, audio_cache, settings)
    trained = train(data.features, data.windows.emotion, data.windows.speaker, split, labels, spec.hash, config,
                    utterance_ids=list(data.windows.utterance_id), augmented=extra, progress=progress,
                    feature_spec=spec.to_dict())
    if config.calibration_folds > 0:
        trained = replace(trained, temperature=calibration_temperature(training_set, split, config, labels, extra))
    return trained


def calibration_temperature(training_set: TrainingSet, split: Any, config: Any, labels: Any,
                            extra: tuple[Any, Any, Any] | None) -> float:
    """The softmax temperature that calibrates a model of ``config`` on unseen voices, fitted
    on training speakers only: ``config.calibration_folds`` speaker folds of ``split.train``,
    each trained like the model (with the corrupted copies of its own speakers) and scored
    on its held-out speakers; their pooled probabilities fit the temperature. Fewer than two
    training speakers: 1 (uncalibrated).

    The copies are the model's own (no extra encoder pass): their babble was drawn from all
    training speakers, so a fold's copies may carry a held-out voice in the background."""
    from ser_pipeline.evaluation.held_out import predict_held_out
    from ser_pipeline.training.fit import fit_temperature, train
    from ser_pipeline.training.splits import Split, speaker_kfold

    data = training_set.data
    rows = np.asarray(split.train)
    speakers = data.windows.speaker.astype(str).to_numpy()
    utterances = data.windows.iloc[rows].drop_duplicates("utterance_id").reset_index(drop=True)
    k = min(config.calibration_folds, utterances.speaker.nunique())
    if k < 2:
        return 1.0
    inner = replace(config, calibration_folds=0)
    probas, truths = [], []
    for _, held_utterances in speaker_kfold(utterances, k=k, seed=config.seed):
        held = sorted(set(utterances.speaker.iloc[held_utterances].astype(str)))
        is_held = np.isin(speakers[rows], held)
        fold = Split(train=rows[~is_held], val=rows[:0], test=rows[is_held],
                     train_speakers=tuple(sorted(set(speakers[rows[~is_held]]))), val_speakers=(),
                     test_speakers=tuple(held), kind="speaker")
        fold_extra = None
        if extra is not None:
            keep = ~np.isin(np.asarray(extra[2], dtype=str), held)
            fold_extra = ({f: v[keep] for f, v in extra[0].items()}, list(np.asarray(extra[1], dtype=object)[keep]),
                          list(np.asarray(extra[2], dtype=object)[keep]))
        model = train(data.features, data.windows.emotion, data.windows.speaker, fold, labels, training_set.spec.hash,
                      inner, utterance_ids=list(data.windows.utterance_id), augmented=fold_extra, progress=None)
        scored = predict_held_out(model, data, fold.test, training_set.spec)
        probas.append(scored.proba)
        truths.append(scored.y)
    return fit_temperature(np.concatenate(probas), np.concatenate(truths))


def evaluate_held_out(trained: Any, training_set: TrainingSet, rows: np.ndarray) -> tuple[dict[str, Any], Any]:
    """Metrics (``evaluation.evaluate``, by corpus and gender) and predictions of the windows at ``rows``."""
    from ser_pipeline.evaluation.held_out import evaluation_groups, predict_held_out
    from ser_pipeline.evaluation.metrics import evaluate

    held = predict_held_out(trained, training_set.data, rows, training_set.spec)
    return evaluate(held.y, held.proba, trained.labels.labels, evaluation_groups(held.utterances)), held


def _record_in_warehouse(con: Any, version: str, meta: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    from ser_pipeline import warehouse

    warehouse.record_model_version(con, version, metrics={k: metrics.get(k) for k in ("uar", "accuracy", "ece", "n")},
                                   labels=list(meta["labels"]), feature_spec=meta["feature_spec_hash"])


def register(settings: Settings, trained: Any, metrics: Mapping[str, Any], promote_if_better: bool = True) -> Registration:
    """Save ``trained`` in the registry and record it in the warehouse; with
    ``promote_if_better``, promote it (both places) when its UAR beats the champion's on the
    same test speakers."""
    from ser_pipeline.training import registry
    from ser_pipeline import warehouse

    version = registry.save_model(trained, dict(metrics), settings.registry_url, settings=settings)
    promoted, reason = (registry.promote_if_better(version, settings.registry_url, settings)
                        if promote_if_better else (False, "promotion not asked for"))
    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        _record_in_warehouse(con, version, trained.metadata(), metrics)
        if promoted:
            warehouse.promote_model(con, version)
    return Registration(version, promoted, reason)


def promote(settings: Settings, version: str) -> None:
    """Make ``version`` the champion: the registry's pointer (what the nightly run labels
    with) and the warehouse's promotion (what the views report), recording the version in the
    warehouse first if it was trained elsewhere."""
    from ser_pipeline.training import registry
    from ser_pipeline import warehouse

    trained_meta = registry.model_meta(version, settings.registry_url, settings)  # raises ModelNotFound
    registry.promote(version, settings.registry_url, settings)
    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        known = con.execute("SELECT 1 FROM model_versions WHERE model_version = ?", [version]).fetchall()
        if not known:
            _record_in_warehouse(con, version, trained_meta, registry.load_metrics(version, settings.registry_url, settings))
        warehouse.promote_model(con, version)


def train_and_register(
    settings: Settings,
    corpus_urls: Mapping[str, str],
    config: Any = None,
    *,
    split: str = "speaker",
    test_speakers: Sequence[str] | None = None,
    promote_if_better: bool = True,
    progress: Callable[[str], None] | None = None,
    step: Step = run_as_is,
) -> TrainingRun:
    """Load, split, fit, evaluate on the test speakers, register (and maybe promote)."""
    from ser_pipeline.training.fit import TrainConfig

    config = config or TrainConfig()
    training_set = step(load_training_set)(settings, dict(corpus_urls), config)
    split_w = step(make_split)(training_set, split, config.seed, test_speakers, config.validation_share)
    trained = step(fit)(training_set, split_w, config, progress, None, settings)
    metrics, held = step(evaluate_held_out)(trained, training_set, split_w.test)
    registration = step(register)(settings, trained, metrics, promote_if_better)
    return TrainingRun(training_set, split_w, replace(trained, version=registration.version), metrics, held, registration)


def retraining_markdown(registration: Registration, metrics: Mapping[str, Any], training_set: TrainingSet | None = None) -> str:
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
    if training_set is not None:
        lines.append(f"| training windows (extracted this run) | {len(training_set.data.windows)} ({training_set.data.extracted}) |")
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
