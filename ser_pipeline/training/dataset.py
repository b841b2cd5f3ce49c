"""A labelled training set: corpus items, their feature windows from the store, aligned.

``load_labelled`` reads the corpora, featurises what the store lacks (re-running is cheap:
stored content is skipped) and returns one row per feature *window* with its utterance's
labels, plus the arrays. Splits are made over utterances (``utterances``) and expanded to
windows with ``expand_split``, so no utterance has windows in two parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ser_pipeline.settings import Settings
from ser_pipeline.training.splits import Split


@dataclass(frozen=True)
class LabelledSet:
    windows: pd.DataFrame  # one row per window: utterance_id, speaker, gender, emotion, corpus, window, path
    features: dict[str, np.ndarray]  # family -> (n_windows, rows, frames)
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of inputs that could not be used
    extracted: int = 0  # windows featurised by the call that made this set (the rest came from the store)

    @property
    def utterances(self) -> pd.DataFrame:
        """One row per utterance (its first window), positional index 0..n-1."""
        return self.windows.drop_duplicates("utterance_id").reset_index(drop=True)

    def subset(self, utterance_ids: Sequence[str]) -> "LabelledSet":
        keep = self.windows.utterance_id.isin(set(utterance_ids)).to_numpy()
        return LabelledSet(self.windows.loc[keep].reset_index(drop=True), {k: v[keep] for k, v in self.features.items()}, self.skipped)


def expand_split(split: Split, utterances: pd.DataFrame, windows: pd.DataFrame) -> Split:
    """A split over ``utterances`` rows as the same split over their ``windows`` rows."""
    def rows(index: np.ndarray) -> np.ndarray:
        ids = set(utterances.utterance_id.iloc[index])
        return np.flatnonzero(windows.utterance_id.isin(ids).to_numpy())

    return Split(
        train=rows(split.train), val=rows(split.val), test=rows(split.test),
        train_speakers=split.train_speakers, val_speakers=split.val_speakers, test_speakers=split.test_speakers,
        kind=split.kind,
    )


def load_labelled(
    corpora: Mapping[str, str],
    spec: Any,
    families: Sequence[str],
    store_url: str | None = None,
    *,
    settings: Settings,
    progress: bool = True,
) -> LabelledSet:
    """Read ``{corpus name: url}``, featurise into the store (``store_url``, else
    ``settings.feature_store_url``), and return the aligned windows. The corpora are read with
    the caller's ``settings`` too, so an ``s3://`` corpus uses the same endpoint as the store."""
    from ser_pipeline.training.corpora import SkippedFile, read_corpus
    from ser_pipeline.features.extraction import featurise
    from ser_pipeline.features.store import read_features

    store_url = store_url or settings.feature_store_url
    items = []
    skipped: list[SkippedFile] = []
    for name, url in corpora.items():
        items.extend(read_corpus(name, url, skipped=skipped, settings=settings))
    if not items:
        empty = pd.DataFrame(columns=["utterance_id", "window", "speaker", "gender", "emotion", "corpus", "path"])
        return LabelledSet(empty, {f: np.zeros((0, *spec.shapes[f]), np.float32) for f in families},
                           tuple((s.path, s.reason) for s in skipped))
    summary = featurise(items, store_url, spec, progress=progress, settings=settings)
    failures = [(s.path, s.reason) for s in skipped] + [(f.path, f.reason) for f in summary.failures]
    labels = pd.DataFrame(
        [{"utterance_id": i.utterance_id, "speaker": i.speaker, "gender": i.gender, "emotion": i.emotion,
          "corpus": i.corpus, "path": i.path} for i in items]
    ).drop_duplicates("utterance_id")
    frame, feats = read_features(store_url, spec, sources={i.corpus for i in items}, families=families, settings=settings)
    keys = frame[["utterance_id", "window"]].reset_index(drop=True)
    joined = keys.merge(labels, on="utterance_id", how="left", validate="many_to_one")
    keep = joined.emotion.notna().to_numpy()  # stored windows of items not asked for now
    windows = joined.loc[keep].reset_index(drop=True)
    failed = {path for path, _ in failures}
    # the store is content-addressed: a file whose bytes equal another's is stored once
    for row in labels[~labels.utterance_id.isin(set(windows.utterance_id))].itertuples():
        if row.path not in failed:
            failures.append((row.path, "no features stored: its audio is byte-identical to another file's (kept once)"))
    return LabelledSet(windows, {k: v[keep] for k, v in feats.items()}, tuple(failures), summary.rows_written)


def load_clips(paths: Sequence[str], sample_rate: int, cache: dict[str, np.ndarray] | None = None,
               settings: Settings | None = None) -> list[np.ndarray]:
    """The decoded samples (float32 ``(n,)``) of ``paths``; ``cache`` (path -> samples) keeps
    them between calls (cross-validation corrupts the same clips in every fold)."""
    from ser_pipeline.audio.decode import load_audio

    cache = {} if cache is None else cache
    out = []
    for path in paths:
        if path not in cache:
            cache[path] = load_audio(path, sample_rate, settings=settings).samples
        out.append(cache[path])
    return out


def corrupted_copies(
    data: LabelledSet,
    rows: np.ndarray,
    spec: Any,
    copies: int,
    seed: int = 0,
    cache: dict[str, np.ndarray] | None = None,
    settings: Settings | None = None,
) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Features of ``copies`` randomly corrupted versions of the utterances at window ``rows``
    (noise at 0-40 dB SNR, babble of *other* utterances of these rows, reverberation, gain,
    band limits, codecs: ``conditions.corrupt_for_training``), as ``training.train`` takes
    them: ``({family: (m, rows, columns)}, emotions, speakers)``, m windows.

    Call it with training rows only, after the split: the babble is made of the same rows'
    audio, so nothing of a validation or test speaker reaches training. Every copy is drawn
    afresh from ``seed`` and the utterance id, so a re-run gives the same copies."""
    from ser_pipeline.audio.conditions import condition_rng, corrupt_for_training
    from ser_pipeline.features.spec import clip_windows
    from ser_pipeline.features.frames import extract_features

    utterances = data.windows.iloc[np.asarray(rows)].drop_duplicates("utterance_id").reset_index(drop=True)
    if copies <= 0 or utterances.empty:
        return {f: np.zeros((0, *spec.shapes[f]), np.float32) for f in spec.families}, [], []
    clips = load_clips(list(utterances.path), spec.sample_rate, cache, settings)
    speakers = utterances.speaker.astype(str).to_numpy()
    windows, emotions, owners = [], [], []
    for i, (clip, uid) in enumerate(zip(clips, utterances.utterance_id)):
        others = np.flatnonzero(speakers != speakers[i])
        for copy in range(copies):
            rng = condition_rng(seed, f"train-copy-{copy}", str(uid))
            pool = [clips[j] for j in rng.choice(others, size=min(8, len(others)), replace=False)] if len(others) else None
            for window in clip_windows(corrupt_for_training(clip, spec.sample_rate, rng, babble=pool), spec):
                windows.append(window)
                emotions.append(str(utterances.emotion.iloc[i]))
                owners.append(speakers[i])
    return extract_features(windows, spec), emotions, owners
