"""Waveform augmentation for the training split (audiomentations).

Each training clip gets ``copies`` perturbed versions: Gaussian noise, pitch shift and time
stretch, each applied with some probability. Augment only after splitting and only the
training indices (``augment_training_split``): a perturbed copy of a test utterance, or any
utterance of a test speaker, in training would leak that voice into the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    noise_amplitude: tuple[float, float] = (0.001, 0.015)
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    stretch_rate: tuple[float, float] = (0.85, 1.15)
    p: float = 0.5  # probability of each transform per copy


def _pipeline(config: AugmentConfig):
    from audiomentations import AddGaussianNoise, Compose, PitchShift, TimeStretch

    return Compose(
        [
            AddGaussianNoise(min_amplitude=config.noise_amplitude[0], max_amplitude=config.noise_amplitude[1], p=config.p),
            PitchShift(min_semitones=config.pitch_semitones[0], max_semitones=config.pitch_semitones[1], p=config.p),
            TimeStretch(min_rate=config.stretch_rate[0], max_rate=config.stretch_rate[1], leave_length_unchanged=True, p=config.p),
        ]
    )


def augment_clips(
    clips: Sequence[np.ndarray], sr: int, copies: int = 1, seed: int = 0, config: AugmentConfig | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """``copies`` augmented versions of every clip (mono float32 samples at ``sr``).

    Returns the new clips and, for each, the position of the clip it came from. Seeded:
    the same inputs and seed give the same outputs.
    """
    import random

    if copies < 0:
        raise ValueError("copies must be >= 0")
    pipeline = _pipeline(config or AugmentConfig())
    # audiomentations draws from numpy's and Python's global generators; seed both, then restore.
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        out: list[np.ndarray] = []
        origin: list[int] = []
        for i, clip in enumerate(clips):
            clip = np.asarray(clip, dtype=np.float32)
            for _ in range(copies):
                out.append(pipeline(samples=clip, sample_rate=sr).astype(np.float32))
                origin.append(i)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return out, np.asarray(origin, dtype=np.int64)


def augment_training_split(
    clips: Sequence[np.ndarray], train_index: np.ndarray, sr: int, copies: int = 1, seed: int = 0,
    config: AugmentConfig | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Augment the clips at ``train_index`` only; returns new clips and their source positions in ``clips``."""
    train_index = np.asarray(train_index, dtype=np.int64)
    new, origin = augment_clips([clips[i] for i in train_index], sr, copies, seed, config)
    return new, train_index[origin]
