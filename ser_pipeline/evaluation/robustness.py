"""A model under recording conditions: the same test clips, clean and degraded, one row each.

Each condition (``conditions.py``) is applied to every test clip with its own seeded
generator (``condition_rng(seed, condition, utterance_id)``), the clips are featurised with
the model's FeatureSpec and predicted with per-speaker statistics taken *within* the
condition: in the product a participant's utterances come from one recording, so their
statistics share its room and microphone. Babble is made of the other test speakers' clips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.settings import Settings


@dataclass(frozen=True)
class ConditionResult:
    condition: str
    metrics: dict[str, Any]  # evaluation.evaluate, by corpus and gender
    utterances: pd.DataFrame  # the evaluated utterances, in the rows' order of y / proba
    y: np.ndarray  # (n,) true class indices in the model's label order
    proba: np.ndarray  # (n, K)


def degraded_features(
    utterances: pd.DataFrame, spec: Any, condition: str, seed: int = 0,
    audio_cache: dict[str, np.ndarray] | None = None, settings: Settings | None = None,
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Features of every utterance (rows with ``path``, ``speaker``, ``utterance_id``) under
    ``condition``: ``({family: (m, rows, columns)}, window utterance ids, window speakers)``."""
    from ser_pipeline.audio.conditions import apply_condition, condition_rng
    from ser_pipeline.training.dataset import load_clips
    from ser_pipeline.features.spec import clip_windows
    from ser_pipeline.features.frames import extract_features

    clips = load_clips(list(utterances.path), spec.sample_rate, audio_cache, settings)
    speakers = utterances.speaker.astype(str).to_numpy()
    windows, owners, owner_speakers = [], [], []
    for i, (clip, uid) in enumerate(zip(clips, utterances.utterance_id.astype(str))):
        rng = condition_rng(seed, condition, uid)
        others = np.flatnonzero(speakers != speakers[i])
        pool = [clips[j] for j in rng.choice(others, size=min(8, len(others)), replace=False)] if len(others) else None
        for window in clip_windows(apply_condition(clip, spec.sample_rate, condition, rng, babble=pool), spec):
            windows.append(window)
            owners.append(uid)
            owner_speakers.append(speakers[i])
    return extract_features(windows, spec), owners, owner_speakers


def evaluate_conditions(
    trained: Any, utterances: pd.DataFrame, spec: Any, conditions: Sequence[str], seed: int = 0,
    audio_cache: dict[str, np.ndarray] | None = None, settings: Settings | None = None,
) -> list[ConditionResult]:
    """``trained`` on ``utterances`` (one row per clip: path, speaker, gender, emotion, corpus,
    utterance_id) under each condition, in order."""
    from ser_pipeline.evaluation.held_out import evaluation_groups
    from ser_pipeline.evaluation.metrics import evaluate
    from ser_pipeline.inference.predict import predict_proba

    utterances = utterances.reset_index(drop=True)
    y = np.asarray(trained.labels.indices(utterances.emotion))
    results = []
    for condition in conditions:
        feats, owners, speakers = degraded_features(utterances, spec, condition, seed, audio_cache, settings)
        proba = predict_proba(trained, feats, speakers, spec, utterance_ids=owners)
        metrics = evaluate(y, proba, trained.labels.labels, evaluation_groups(utterances))
        results.append(ConditionResult(condition, metrics, utterances, y, proba))
    return results


def one_sided_participants(utterances: pd.DataFrame, turns: int = 15) -> pd.Series:
    """Participant ids that make each speaker's clips one-sided: the speaker's clips sorted
    by emotion and dealt into participants of ``turns`` clips (``<speaker>~<k>``), each then
    heard in one or two moods, as focus-group participants often are. Per-participant
    statistics of such a participant lean toward their mood; this is the test of how much
    that costs. One entry per row of ``utterances`` (columns speaker, emotion, utterance_id)."""
    if turns < 1:
        raise ValueError(f"turns must be at least 1, got {turns}")
    ordered = utterances.sort_values(["speaker", "emotion", "utterance_id"], kind="stable")
    rank = ordered.groupby("speaker", sort=False).cumcount() // turns
    ids = ordered.speaker.astype(str) + "~" + rank.astype(str)
    return ids.reindex(utterances.index).rename("speaker")


def pool_results(parts: Sequence[Sequence[ConditionResult]]) -> list[ConditionResult]:
    """Per condition, the results of several models on disjoint speakers (cross-validation
    folds) pooled into one evaluation."""
    from ser_pipeline.evaluation.held_out import evaluation_groups
    from ser_pipeline.evaluation.metrics import evaluate

    pooled = []
    for i, first in enumerate(parts[0]):
        group = [p[i] for p in parts]
        utterances = pd.concat([g.utterances for g in group], ignore_index=True)
        y, proba = np.concatenate([g.y for g in group]), np.concatenate([g.proba for g in group])
        pooled.append(ConditionResult(first.condition, evaluate(y, proba, first.metrics["labels"], evaluation_groups(utterances)),
                                      utterances, y, proba))
    return pooled


def condition_row(result: ConditionResult) -> dict[str, Any]:
    """One table row: condition, n, UAR, accuracy, macro F1, ECE, the gender gap (UAR points)."""
    m = result.metrics
    gender = m.get("groups", {}).get("gender", {}).get("largest_gap", {}).get("uar", {})
    return {"condition": result.condition, "n": m["n"], "uar": m["uar"], "accuracy": m["accuracy"],
            "macro_f1": m["macro"]["f1"], "ece": m["ece"], "gender_gap": gender.get("gap"),
            "gender_best": gender.get("best"), "gender_worst": gender.get("worst")}


def conditions_markdown(rows: Sequence[Mapping[str, Any]], title: str = "By recording condition") -> str:
    """The rows of :func:`condition_row` as a markdown table."""
    def pct(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}%"

    lines = [f"## {title}", "", "| condition | n | UAR | accuracy | macro F1 | ECE | gender gap (UAR) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        gap = "-" if r.get("gender_gap") is None else f"{100 * r['gender_gap']:.1f} pts ({r['gender_worst']} lower)"
        lines.append(f"| {r['condition']} | {r['n']} | {pct(r['uar'])} | {pct(r['accuracy'])} | {pct(r['macro_f1'])} "
                     f"| {r['ece']:.3f} | {gap} |")
    return "\n".join(lines) + "\n"
