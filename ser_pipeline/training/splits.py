"""Train/validation/test splits.

``speaker_split`` is the one to evaluate with: no speaker appears in two parts, so the test
figure says how the model does on voices it has never heard (the product's situation).
``random_split`` reproduces the seed's utterance-level split, which leaks speakers and
inflates accuracy; it exists only to show that gap beside the grouped figure.
``speaker_kfold`` gives folds over speaker groups for model selection, so choices are never
tuned to the test speakers.

All take a DataFrame with (by default) ``speaker`` and ``emotion`` columns (``gender`` is used
for balance when present) and return positional indices into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Split:
    """Positional row indices of each part and the speakers each part holds."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]
    test_speakers: tuple[str, ...]
    kind: str  # "speaker" or "random"

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train_speakers), "val": list(self.val_speakers), "test": list(self.test_speakers)}


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def speaker_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    speaker_col: str = "speaker",
    label_col: str = "emotion",
    gender_col: str = "gender",
    trials: int = 500,
    test_speakers: Sequence[str] | None = None,
) -> Split:
    """Split by speaker, close to ``fractions`` of utterances, stratified as far as groups allow.

    Speakers are dealt out in ``trials`` seeded random orders, each filling test, then
    validation, then train up to their share of utterances (each non-empty part gets at
    least one speaker); the order whose parts' emotion (and gender, when present)
    distributions are closest to the whole set's wins. Deterministic for a given seed.

    ``test_speakers`` pins the test part (e.g. the champion's, so two models are compared on
    the same voices); validation and training are then dealt from the other speakers.
    """
    fractions = _check_fractions(fractions)
    speakers_all = df[speaker_col].astype(str)
    if test_speakers is not None:
        pinned = sorted({str(s) for s in test_speakers})
        unknown = sorted(set(pinned) - set(speakers_all))
        if unknown:
            raise ValueError(f"test speakers {unknown} are not in the data")
        rest_rows = np.flatnonzero(~speakers_all.isin(pinned).to_numpy())
        f_train, f_val, _ = fractions
        inner = speaker_split(df.iloc[rest_rows], (f_train / (f_train + f_val), f_val / (f_train + f_val), 0.0), seed,
                              speaker_col, label_col, gender_col, trials)
        return Split(
            train=rest_rows[inner.train], val=rest_rows[inner.val],
            test=np.flatnonzero(speakers_all.isin(pinned).to_numpy()),
            train_speakers=inner.train_speakers, val_speakers=inner.val_speakers, test_speakers=tuple(pinned), kind="speaker",
        )
    counts = speakers_all.value_counts().sort_index()
    names = counts.index.to_numpy()
    needed = sum(f > 0 for f in fractions)
    if len(names) < needed:
        raise ValueError(f"{len(names)} speakers cannot fill {needed} speaker-disjoint parts")
    # per-speaker count vectors, so each trial is scored with a few array sums
    label_counts = pd.crosstab(speakers_all, df[label_col].astype(str)).reindex(names).to_numpy(dtype=float)
    has_gender = gender_col in df.columns
    gender_counts = (
        pd.crosstab(speakers_all, df[gender_col].astype(str)).reindex(names).to_numpy(dtype=float) if has_gender else None
    )
    target_labels = label_counts.sum(axis=0) / label_counts.sum()
    target_genders = gender_counts.sum(axis=0) / gender_counts.sum() if has_gender else None
    position = {name: i for i, name in enumerate(names)}
    total = counts.sum()
    rng = np.random.default_rng(seed)
    best: tuple[float, list[list[str]]] | None = None
    for _ in range(trials):
        order = rng.permutation(names)
        parts: list[list[str]] = [[], [], []]  # train, val, test
        filled = [0, 0, 0]
        pos = 0
        for part in (2, 1):  # test, then validation
            if fractions[part] == 0:
                continue
            goal = fractions[part] * total
            while pos < len(order) - sum(1 for p in (0, 1, 2) if p < part and fractions[p] > 0):
                n = counts[order[pos]]
                if parts[part] and abs(filled[part] + n - goal) >= abs(filled[part] - goal):
                    break
                parts[part].append(order[pos])
                filled[part] += n
                pos += 1
        parts[0] = list(order[pos:])
        if any(fractions[p] > 0 and not parts[p] for p in range(3)):
            continue
        score = 0.0
        for p, members in enumerate(parts):
            if not members:
                continue
            rows = [position[m] for m in members]
            sub_labels = label_counts[rows].sum(axis=0)
            score += abs(sub_labels.sum() / total - fractions[p])
            score += 0.5 * np.abs(sub_labels / sub_labels.sum() - target_labels).sum()
            if has_gender:
                sub_genders = gender_counts[rows].sum(axis=0)
                score += 0.25 * np.abs(sub_genders / sub_genders.sum() - target_genders).sum()
        if best is None or score < best[0] - 1e-12:
            best = (score, parts)
    if best is None:
        raise ValueError("could not find a speaker split with every part non-empty")
    parts = best[1]
    index = [np.flatnonzero(speakers_all.isin(members).to_numpy()) for members in parts]
    return Split(
        train=index[0], val=index[1], test=index[2],
        train_speakers=tuple(sorted(parts[0])), val_speakers=tuple(sorted(parts[1])),
        test_speakers=tuple(sorted(parts[2])), kind="speaker",
    )


def random_split(
    df: pd.DataFrame,
    fractions: Sequence[float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    speaker_col: str = "speaker",
    label_col: str = "emotion",
) -> Split:
    """The seed's utterance-level split, stratified by emotion. Speakers leak across parts."""
    from sklearn.model_selection import train_test_split

    f_train, f_val, f_test = _check_fractions(fractions)
    idx = np.arange(len(df))
    y = df[label_col].astype(str).to_numpy()
    rest, test = train_test_split(idx, test_size=f_test, random_state=seed, stratify=y)
    train, val = train_test_split(rest, test_size=f_val / (f_train + f_val), random_state=seed, stratify=y[rest])
    spk = df[speaker_col].astype(str).to_numpy()
    return Split(
        train=np.sort(train), val=np.sort(val), test=np.sort(test),
        train_speakers=tuple(sorted(set(spk[train]))), val_speakers=tuple(sorted(set(spk[val]))),
        test_speakers=tuple(sorted(set(spk[test]))), kind="random",
    )


def speaker_kfold(
    df: pd.DataFrame, k: int = 4, seed: int = 0, speaker_col: str = "speaker", label_col: str = "emotion"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, held-out) index pairs; each speaker is held out in exactly one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_speakers = df[speaker_col].nunique()
    if n_speakers < k:
        raise ValueError(f"{n_speakers} speakers cannot make {k} speaker-disjoint folds")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (np.sort(tr), np.sort(te))
        for tr, te in folds.split(np.zeros(len(df)), df[label_col].astype(str), df[speaker_col].astype(str))
    ]
