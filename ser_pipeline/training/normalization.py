"""Feature normalisation fitted on the training split only, saved with the model.

Two modes, both per feature row (an MFCC coefficient, a mel band, ...), statistics taken over
utterances and frames:

- ``"global"``: one mean/std per row from the training split.
- ``"speaker"``: each speaker's features are standardised with that speaker's own mean/std.
  Every utterance in our product belongs to a known participant, so at prediction time the
  statistics come from the participant's own utterances (no labels needed). This removes
  much of what differs between voices (vocal tract length, microphone, loudness), the
  known lever for unseen speakers. Speakers with fewer than ``min_speaker_utterances``
  utterances (or unknown speaker ``None``) fall back to the global training statistics.

  With ``prior_utterances`` k > 0 a speaker's statistics are *shrunk* toward the global ones
  as if k utterances at the global statistics were added to the speaker's n: mean
  ``(n m_s + k m_g) / (n + k)``, and the pooled variance around it. A participant heard in
  three turns of one mood is then standardised mostly by the population, one heard in sixty
  mostly by themselves, instead of a cliff at ``min_speaker_utterances``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

NormalizationMode = Literal["global", "speaker"]
_EPS = 1e-6


def _row_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and std of ``x`` ``(n, rows, frames)``, accumulated in float64 for
    stability (without a float64 copy of ``x``: two passes over float32)."""
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(axis=(0, 2), dtype=np.float64)
    centred = x - mean.astype(np.float32)[None, :, None]
    np.square(centred, out=centred)
    std = np.sqrt(centred.mean(axis=(0, 2), dtype=np.float64))
    return mean, np.maximum(std, _EPS)


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray) -> None:
    np.subtract(x, mean.astype(np.float32)[None, :, None], out=out)
    np.divide(out, std.astype(np.float32)[None, :, None], out=out)


@dataclass(frozen=True)
class Normalizer:
    """Standardises ``(n, rows, frames)`` feature arrays; see the module docstring."""

    mode: NormalizationMode
    mean: np.ndarray  # (rows,) global training mean
    std: np.ndarray  # (rows,) global training std
    min_speaker_utterances: int = 5
    prior_utterances: float = 0.0  # k of the shrinkage toward the global statistics; 0: none
    clip_z: float = 0.0  # standardised values clipped to [-clip_z, clip_z]; 0: not clipped

    def transform(self, x: np.ndarray, speakers: Sequence[str | None] | None = None) -> np.ndarray:
        """Standardised float32 copy of ``x``. ``speakers`` (length n) is needed in speaker mode."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected features (n, {self.mean.shape[0]}, frames), got {x.shape}")
        out = np.empty_like(x)
        if self.mode == "global":
            _standardise(x, self.mean, self.std, out)
            return self._clipped(out)
        if speakers is None:
            raise ValueError("speaker normalisation needs the speaker of every utterance")
        speakers_arr = np.asarray(list(speakers), dtype=object)
        if len(speakers_arr) != len(x):
            raise ValueError(f"{len(speakers_arr)} speakers given for {len(x)} utterances")
        own = np.zeros(len(x), dtype=bool)  # rows standardised with their speaker's own statistics
        for speaker in {s for s in speakers_arr if s is not None}:
            rows = np.flatnonzero(speakers_arr == speaker)
            if len(rows) < self.min_speaker_utterances:
                continue
            part = x[rows]
            _standardise(part, *self._speaker_stats(part), part)
            out[rows] = part
            own[rows] = True
        if not own.all():
            rest = np.flatnonzero(~own)
            part = x[rest]
            _standardise(part, self.mean, self.std, part)
            out[rest] = part
        return self._clipped(out)

    def _speaker_stats(self, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of one speaker's rows ``part``, shrunk toward the global ones."""
        mean, std = _row_stats(part)
        if self.prior_utterances > 0:
            n, k = len(part), self.prior_utterances
            shrunk = (n * mean + k * self.mean) / (n + k)
            var = (n * (std**2 + (mean - shrunk) ** 2) + k * (self.std**2 + (self.mean - shrunk) ** 2)) / (n + k)
            mean, std = shrunk, np.maximum(np.sqrt(var), _EPS)
        return mean, std

    def transform_as_heard(self, x: np.ndarray, speakers: Sequence[str], emotions: Sequence[str], max_group: int,
                           rng: np.random.Generator) -> np.ndarray:
        """Standardised copy of training rows ``x`` ``(n, rows, frames)`` as a participant is
        heard in the product: each speaker's rows dealt into groups of 1..``max_group`` (a
        participant's few turns in one session), half of the groups drawn from one emotion's
        rows first (a participant in one mood), each standardised by its own shrunk statistics.
        A model trained on these learns what the voice's statistics can and cannot tell."""
        x = np.asarray(x, dtype=np.float32)
        out = np.empty_like(x)
        speakers_arr, emotions_arr = np.asarray(speakers, dtype=object), np.asarray(emotions, dtype=object)
        for speaker in set(speakers_arr):
            rows = rng.permutation(np.flatnonzero(speakers_arr == speaker))
            if rng.random() < 0.5:  # one-sided groups: the speaker's rows in runs of one emotion
                rows = rows[np.argsort(emotions_arr[rows], kind="stable")]
            start = 0
            while start < len(rows):
                group = rows[start : start + int(rng.integers(1, max_group + 1))]
                part = x[group]
                _standardise(part, *self._speaker_stats(part), part)
                out[group] = part
                start += len(group)
        return self._clipped(out)

    def _clipped(self, z: np.ndarray) -> np.ndarray:
        """A feature almost constant over the training voices has a tiny std, so a new voice
        can sit hundreds of stds away and swamp every other input: bounded here."""
        if self.clip_z > 0:
            np.clip(z, -self.clip_z, self.clip_z, out=z)
        return z

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"mode": self.mode, "min_speaker_utterances": self.min_speaker_utterances,
                           "prior_utterances": self.prior_utterances, "clip_z": self.clip_z})
        np.savez(buf, mean=self.mean, std=self.std, meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Normalizer":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return cls(mode=meta["mode"], mean=npz["mean"], std=npz["std"],
                       min_speaker_utterances=int(meta["min_speaker_utterances"]),
                       prior_utterances=float(meta.get("prior_utterances", 0.0)),
                       clip_z=float(meta.get("clip_z", 0.0)))


def fit_normalizer(x_train: np.ndarray, mode: NormalizationMode = "global", min_speaker_utterances: int = 5,
                   prior_utterances: float = 0.0, clip_z: float = 0.0) -> Normalizer:
    """Fit on the *training* split's features ``(n, rows, frames)`` only."""
    if mode not in ("global", "speaker"):
        raise ValueError(f"unknown normalisation mode {mode!r}; choose 'global' or 'speaker'")
    mean, std = _row_stats(np.asarray(x_train))
    return Normalizer(mode=mode, mean=mean, std=std, min_speaker_utterances=min_speaker_utterances,
                      prior_utterances=prior_utterances, clip_z=clip_z)
