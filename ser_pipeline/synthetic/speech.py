"""The source-filter synthesiser: a jittered, shimmered glottal pulse train through vowel
formant resonators, with consonant noise bursts between syllables, shaped by one utterance's
random variation of its emotion's prosody. One call, one utterance's samples.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, sosfilt

from ser_pipeline.labels import EMOTIONS
from ser_pipeline.synthetic.voices import DEFAULT_SAMPLE_RATE, PROSODY, Prosody, Voice

# Formants F1..F3 (Hz) and bandwidths of five vowels of an average male vocal tract.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [300.0, 870.0, 2240.0],  # u
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
    ]
)
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_F4 = 3500.0


def _vary(p: Prosody, rng: np.random.Generator) -> Prosody:
    """One utterance's prosody: the emotion's prototype with random variation."""
    n = rng.standard_normal(9)
    return replace(
        p,
        f0_ratio=p.f0_ratio * math.exp(0.07 * n[0]),
        range_st=max(0.3, p.range_st * math.exp(0.25 * n[1])),
        slope_st_s=p.slope_st_s + 1.0 * n[2],
        rate_syl_s=p.rate_syl_s * math.exp(0.10 * n[3]),
        loudness_db=p.loudness_db + 2.0 * n[4],
        jitter=p.jitter * math.exp(0.3 * n[5]),
        shimmer=p.shimmer * math.exp(0.3 * n[6]),
        breathiness=p.breathiness * math.exp(0.3 * n[7]),
        open_quotient=float(np.clip(p.open_quotient + 0.05 * n[8], 0.25, 0.9)),
    )


def _resonator_sos(freqs: np.ndarray, bandwidths: np.ndarray, sample_rate: int) -> np.ndarray:
    """Second-order resonators with unit gain at DC, one row per formant, as an SOS cascade."""
    nyq = sample_rate / 2
    freqs = np.minimum(freqs, 0.95 * nyq)
    r = np.exp(-np.pi * bandwidths / sample_rate)
    c = 2 * r * np.cos(2 * np.pi * freqs / sample_rate)
    a1, a2 = -c, r * r
    gain = 1 + a1 + a2
    zeros = np.zeros_like(r)
    return np.stack([gain, zeros, zeros, np.ones_like(r), a1, a2], axis=1)


@lru_cache(maxsize=8)
def _fricative_sos(sample_rate: int) -> np.ndarray:
    return butter(4, min(2500.0, 0.4 * sample_rate) / (sample_rate / 2), btype="high", output="sos")


def synthesize_utterance(
    emotion: str,
    voice: Voice,
    duration_s: float,
    rng: np.random.Generator,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> np.ndarray:
    """A speech-like utterance of ``voice`` in ``emotion``: float32 mono ``(round(duration_s*sr),)``.

    Short silences lead and trail; the level is set by the emotion's and voice's loudness
    (RMS about -26 dBFS for neutral speech), peaks stay inside [-1, 1].
    """
    if emotion not in PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; known: {EMOTIONS}")
    p = _vary(PROSODY[emotion], rng)
    sr = int(sample_rate)
    n = max(1, int(round(duration_s * sr)))
    t = np.arange(n) / sr

    # Syllable timeline: [consonant | vowel | gap] repeated from lead to trail silence.
    lead, trail = rng.uniform(0.03, 0.12, 2)
    rate = p.rate_syl_s * voice.rate_factor
    span = max(duration_s - lead - trail, 0.2)
    n_syl = max(1, int(round(span * rate * rng.uniform(0.9, 1.1))))
    lengths = rng.gamma(8.0, 1.0, n_syl)
    bounds = lead + span * np.concatenate([[0.0], np.cumsum(lengths) / lengths.sum()])
    starts, ends = bounds[:-1], bounds[1:]
    syl_len = ends - starts
    cons_len = np.minimum(rng.uniform(0.02, 0.09, n_syl), 0.35 * syl_len)
    gap_len = np.minimum(rng.uniform(0.0, 0.06, n_syl), 0.2 * syl_len)
    vowel_start = starts + cons_len
    vowel_end = ends - gap_len

    syl_idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, n_syl - 1)
    in_span = (t >= starts[0]) & (t < ends[-1])
    voiced = in_span & (t >= vowel_start[syl_idx]) & (t < vowel_end[syl_idx])
    consonant = in_span & (t >= starts[syl_idx]) & (t < vowel_start[syl_idx])

    # Pitch: level, per-syllable accents, overall slope, tremor, then per-cycle jitter.
    f0_mean = voice.f0_hz * p.f0_ratio
    accents = rng.uniform(-0.5, 0.5, n_syl) * p.range_st
    semitones = accents[syl_idx] + p.slope_st_s * (t - duration_s / 2)
    semitones = uniform_filter1d(semitones, size=max(1, int(0.06 * sr)), mode="nearest")
    if p.tremor_hz:
        semitones = semitones + p.tremor_st * np.sin(2 * np.pi * p.tremor_hz * t + rng.uniform(0, 2 * np.pi))
    f0 = f0_mean * np.exp2(semitones / 12.0)
    nominal_cycle = (t * f0_mean).astype(np.int64)
    jitter = p.jitter + voice.jitter
    f0 = f0 * (1.0 + jitter * rng.standard_normal(nominal_cycle[-1] + 1)[nominal_cycle])
    phase = np.cumsum(f0 / sr)
    cycle = phase.astype(np.int64)
    frac = phase - cycle

    # Glottal source: a raised-cosine open phase, differentiated (lip radiation), with shimmer.
    oq = float(np.clip(p.open_quotient + voice.open_quotient, 0.25, 0.9))
    pulse = np.where(frac < oq, np.sin(np.pi * np.minimum(frac / oq, 1.0)) ** 2, 0.0)
    source = np.diff(pulse, prepend=0.0) * (sr / f0_mean)
    source *= 1.0 + p.shimmer * rng.standard_normal(cycle[-1] + 1)[cycle]
    noise = rng.standard_normal(n)
    breath = (p.breathiness + voice.breathiness) * noise * (0.4 + 0.6 * pulse)
    excitation = (source + breath * np.std(source)) * voiced

    # Vowel-dependent formant filters, cross-faded between syllables.
    vowel_of_syl = rng.integers(0, len(_VOWELS), n_syl)
    scale = voice.formant_scale * p.formant_shift
    weights = np.zeros((len(_VOWELS), n))
    weights[vowel_of_syl[syl_idx], np.arange(n)] = 1.0
    weights = uniform_filter1d(weights, size=max(1, int(0.03 * sr)), axis=1, mode="nearest")
    speech = np.zeros(n)
    for v in np.unique(vowel_of_syl):
        freqs = np.append(_VOWELS[v] * scale * np.exp(0.03 * rng.standard_normal(3)), _F4 * scale)
        sos = _resonator_sos(freqs, np.append(_BANDWIDTHS, 250.0), sr)
        speech += weights[v] * sosfilt(sos, excitation)

    # Syllable envelopes (stress, declination), then consonant noise.
    stress = rng.uniform(0.55, 1.0, n_syl)
    declination = np.linspace(1.0, 0.75, n)
    envelope = uniform_filter1d(voiced * stress[syl_idx], size=max(1, int(0.02 * sr)), mode="constant") * declination
    speech *= envelope
    fricative = sosfilt(_fricative_sos(sr), rng.standard_normal(n))
    cons_env = uniform_filter1d(consonant.astype(float), size=max(1, int(0.01 * sr)), mode="constant")
    speech_rms = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    speech += p.consonant_level * speech_rms * fricative / (np.std(fricative) + 1e-12) * cons_env

    target_rms = 10 ** ((-26.0 + p.loudness_db + voice.loudness_db) / 20)
    active = voiced | consonant
    rms = np.sqrt(np.mean(speech[active] ** 2)) if active.any() else 1.0
    speech *= target_rms / max(rms, 1e-12)
    peak = np.max(np.abs(speech))
    if peak > 0.98:
        speech *= 0.98 / peak
    return speech.astype(np.float32)
