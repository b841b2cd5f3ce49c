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

    def transform(self, x: np.ndarray, speakers: Sequence[str | None] | None = None) -> np.ndarray:
        """Standardised float32 copy of ``x``. ``speakers`` (length n) is needed in speaker mode."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected features (n, {self.mean.shape[0]}, frames), got {x.shape}")
        out = np.empty_like(x)
        if self.mode == "global":
            _standardise(x, self.mean, self.std, out)
            return out
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
            mean, std = _row_stats(part)
            if self.prior_utterances > 0:
                n, k = len(rows), self.prior_utterances
                shrunk = (n * mean + k * self.mean) / (n + k)
                var = (n * (std**2 + (mean - shrunk) ** 2) + k * (self.std**2 + (self.mean - shrunk) ** 2)) / (n + k)
                mean, std = shrunk, np.maximum(np.sqrt(var), _EPS)
            _standardise(part, mean, std, part)
            out[rows] = part
            own[rows] = True
        if not own.all():
            rest = np.flatnonzero(~own)
            part = x[rest]
            _standardise(part, self.mean, self.std, part)
            out[rest] = part
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"mode": self.mode, "min_speaker_utterances": self.min_speaker_utterances,
                           "prior_utterances": self.prior_utterances})
        np.savez(buf, mean=self.mean, std=self.std, meta=np.array(meta))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Normalizer":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return cls(mode=meta["mode"], mean=npz["mean"], std=npz["std"],
                       min_speaker_utterances=int(meta["min_speaker_utterances"]),
                       prior_utterances=float(meta.get("prior_utterances", 0.0)))


def fit_normalizer(x_train: np.ndarray, mode: NormalizationMode = "global", min_speaker_utterances: int = 5,
                   prior_utterances: float = 0.0) -> Normalizer:
    """Fit on the *training* split's features ``(n, rows, frames)`` only."""
    if mode not in ("global", "speaker"):
        raise ValueError(f"unknown normalisation mode {mode!r}; choose 'global' or 'speaker'")
    mean, std = _row_stats(np.asarray(x_train))
    return Normalizer(mode=mode, mean=mean, std=std, min_speaker_utterances=min_speaker_utterances,
                      prior_utterances=prior_utterances)
