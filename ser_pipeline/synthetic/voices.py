"""Who speaks and how each emotion sounds: a speaker's :class:`Voice` (what stays the same
whatever the emotion) and each emotion's :class:`Prosody` prototype (:data:`PROSODY`), the two
inputs the synthesiser combines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SAMPLE_RATE = 22_050


@dataclass(frozen=True)
class Voice:
    """One speaker's voice: what stays the same whatever the emotion.

    ``f0_hz`` is the speaking pitch in neutral speech; ``formant_scale`` the vocal-tract
    length factor (1.0 an average male, ~1.15 female); the rest are individual offsets.
    """

    speaker: str
    gender: str
    f0_hz: float
    formant_scale: float
    rate_factor: float = 1.0
    loudness_db: float = 0.0
    breathiness: float = 0.0
    jitter: float = 0.0
    open_quotient: float = 0.0


def make_voice(speaker: str, gender: str, rng: np.random.Generator) -> Voice:
    """A random voice of ``gender`` (``male``/``female``)."""
    if gender not in ("male", "female"):
        raise ValueError(f"gender must be 'male' or 'female', not {gender!r}")
    male = gender == "male"
    return Voice(
        speaker=speaker,
        gender=gender,
        f0_hz=float((115.0 if male else 205.0) * math.exp(0.12 * rng.standard_normal())),
        formant_scale=float((1.0 if male else 1.15) * math.exp(0.04 * rng.standard_normal())),
        rate_factor=float(math.exp(0.10 * rng.standard_normal())),
        loudness_db=float(1.5 * rng.standard_normal()),
        breathiness=float(abs(0.05 * rng.standard_normal())),
        jitter=float(abs(0.004 * rng.standard_normal())),
        open_quotient=float(0.04 * rng.standard_normal()),
    )


@dataclass(frozen=True)
class Prosody:
    """An emotion's prototype. Pitch in ratio/semitones, rate in syllables/s, loudness in dB."""

    f0_ratio: float  # pitch level relative to the speaker's neutral f0
    range_st: float  # pitch movement between syllables (semitones, peak to peak)
    slope_st_s: float  # overall contour slope (semitones per second)
    rate_syl_s: float
    loudness_db: float
    jitter: float  # relative cycle-to-cycle f0 perturbation
    shimmer: float  # relative cycle-to-cycle amplitude perturbation
    breathiness: float  # aspiration noise relative to the voiced source
    open_quotient: float  # glottal open phase (large: soft and dark; small: pressed and bright)
    formant_shift: float = 1.0  # smiling raises formants, a lowered larynx lowers them
    tremor_hz: float = 0.0
    tremor_st: float = 0.0
    consonant_level: float = 0.35


PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 2.0, -1.0, 4.2, 0.0, 0.008, 0.03, 0.06, 0.60),
    "calm": Prosody(0.93, 1.2, -1.5, 3.3, -5.0, 0.006, 0.02, 0.16, 0.72, 0.98),
    "happy": Prosody(1.25, 6.0, 1.0, 4.9, 4.0, 0.010, 0.04, 0.05, 0.50, 1.06),
    "sad": Prosody(0.90, 1.0, -2.5, 2.8, -7.0, 0.020, 0.06, 0.30, 0.78, 0.95, 5.0, 0.3),
    "angry": Prosody(1.30, 5.0, -2.0, 5.3, 8.0, 0.020, 0.08, 0.03, 0.38, 1.02, consonant_level=0.5),
    "fearful": Prosody(1.45, 3.5, 2.0, 5.8, -1.0, 0.035, 0.07, 0.25, 0.55, 1.03, 7.0, 0.8),
    "disgust": Prosody(0.92, 3.0, -3.0, 3.1, 1.0, 0.040, 0.09, 0.10, 0.48, 0.96, consonant_level=0.45),
    "surprised": Prosody(1.40, 9.0, 5.0, 4.5, 4.0, 0.010, 0.04, 0.08, 0.50, 1.04),
}
