"""Utterance functionals: statistics of the frame features over a window's *speech* frames.

A spec with ``output="functionals"`` stores one vector per window instead of frame matrices.
Why: statistics pooled over every frame (silence, room tone and zero padding included) move
with the noise floor and with how much pause a clip holds, not with the speaker's emotion;
restricted to speech frames they move much less. The vector, in :func:`functional_names`
order:

- every row of the four frame families (40 MFCC, 12 chroma, 128 mel bands in dB, 7 contrast
  bands): mean, standard deviation, 10th and 90th percentile over speech frames;
- the standard deviation of each MFCC's frame-to-frame change (articulation rate);
- pitch over voiced speech frames, in semitones re 100 Hz: mean, std, p10, median, p90,
  range (p90 - p10), slope (semitones per second); the voiced share of speech frames; the
  voicing strength's mean and std; harmonics-to-noise ratio (dB) mean and std;
- frame energy (dB) over speech frames: mean, std, p10, p90, range, the std of its change,
  and the speech share of the window's non-padding frames.

Speech frames: frames with audio (not zero padding) whose energy is within
``spec.speech_gate_db`` of the window's loudest frame and at least 3 dB above its noise
floor (the 10th percentile of frame energies) - a noise-floor-relative energy gate; frames
within 6 dB of the loudest always count (a window of steady speech has no floor). At least
ten frames are kept (the loudest ones) so that every window has a vector.

The pitch track comes from the same power spectrogram as the other families (no second
pass over the samples): the autocorrelation of each frame is the inverse FFT of its power
spectrum, divided by the window's own autocorrelation (Boersma 1993) so the Hann taper does
not bias long lags; its highest normalised peak between ``sample_rate / pitch_fmax`` and
``sample_rate / pitch_fmin`` gives F0 (parabolic interpolation) and the voicing strength r,
and HNR = 10 log10(r / (1 - r)).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

_STATS = ("mean", "std", "p10", "p90")
_PITCH = ("pitch_mean", "pitch_std", "pitch_p10", "pitch_p50", "pitch_p90", "pitch_range", "pitch_slope",
          "voiced_share", "voicing_mean", "voicing_std", "hnr_mean", "hnr_std")
_ENERGY = ("energy_mean", "energy_std", "energy_p10", "energy_p90", "energy_range", "energy_delta_std", "speech_share")
_VOICED = 0.5  # voicing strength above which a speech frame counts as voiced
_MIN_SPEECH_FRAMES = 10


@lru_cache(maxsize=8)
def functional_names(spec: Any) -> tuple[str, ...]:
    """Names of the functional vector's entries, in order (see the module docstring)."""
    names = [f"{family}{row}_{stat}" for family, rows in spec.frame_families.items() for row in range(rows) for stat in _STATS]
    names += [f"mfcc{row}_delta_std" for row in range(spec.n_mfcc)]
    return (*names, *_PITCH, *_ENERGY)


@lru_cache(maxsize=8)
def _window_autocorrelation(n_fft: int, window_name: str) -> np.ndarray:
    import librosa
    import scipy.fft

    window = librosa.filters.get_window(window_name, n_fft, fftbins=True)
    acf = scipy.fft.irfft(np.abs(scipy.fft.rfft(window)) ** 2, n=n_fft)
    return (acf / acf[0]).astype(np.float32)


def pitch_track(power: np.ndarray, spec: Any, active: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 in Hz and voicing strength in [0, 1], both ``(b, n_frames)``, from power ``(b, n_frames, n_freq)``.

    Frames from ``active`` on (zero padding) get F0 0 and voicing 0."""
    import scipy.fft

    b, t, _ = power.shape
    f0 = np.zeros((b, t), np.float32)
    voicing = np.zeros((b, t), np.float32)
    lo = int(np.ceil(spec.sample_rate / spec.pitch_fmax))
    hi = int(np.floor(spec.sample_rate / spec.pitch_fmin))
    acf = scipy.fft.irfft(power[:, :active], n=spec.n_fft, axis=-1)[..., : hi + 2]  # (b, active, lags)
    energy = acf[..., :1]
    normalised = np.divide(acf, energy, out=np.zeros_like(acf), where=energy > 0)
    normalised /= np.maximum(_window_autocorrelation(spec.n_fft, spec.window)[: hi + 2], 1e-3)
    search = normalised[..., lo : hi + 1]
    peak = np.argmax(search, axis=-1)  # (b, active)
    lag = peak + lo
    left = np.take_along_axis(normalised, (lag - 1)[..., None], axis=-1)[..., 0]
    centre = np.take_along_axis(normalised, lag[..., None], axis=-1)[..., 0]
    right = np.take_along_axis(normalised, (lag + 1)[..., None], axis=-1)[..., 0]
    curvature = left - 2 * centre + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    f0[:, :active] = spec.sample_rate / (lag + np.clip(shift, -0.5, 0.5))
    voicing[:, :active] = np.clip(centre, 0.0, 1.0)
    return f0, voicing


def speech_mask(energy_db: np.ndarray, has_audio: np.ndarray, gate_db: float) -> np.ndarray:
    """Speech frames ``(b, n_frames)`` bool from frame energies ``(b, n_frames)`` in dB; see the module docstring."""
    mask = np.zeros_like(has_audio)
    for i in range(len(energy_db)):
        audio = np.flatnonzero(has_audio[i])
        if not len(audio):
            continue
        levels = energy_db[i, audio]
        # the floor gate only where there is a floor: a window of steady speech has none
        threshold = min(max(levels.max() - gate_db, np.percentile(levels, 10) + 3.0), levels.max() - 6.0)
        chosen = audio[levels > threshold]
        if len(chosen) < min(_MIN_SPEECH_FRAMES, len(audio)):
            chosen = audio[np.argsort(levels)[::-1][:_MIN_SPEECH_FRAMES]]
        mask[i, chosen] = True
    return mask


def _stats(x: np.ndarray) -> np.ndarray:
    """mean, std, p10, p90 per row of ``x`` ``(rows, frames)`` -> ``(rows, 4)``."""
    p10, p90 = np.percentile(x, [10, 90], axis=1)
    return np.stack([x.mean(axis=1), x.std(axis=1), p10, p90], axis=1)


def _pitch_functionals(f0: np.ndarray, voicing: np.ndarray, speech: np.ndarray, hop_s: float) -> list[float]:
    voiced = speech & (voicing > _VOICED)
    strength = voicing[speech]
    out = [0.0] * 7
    if voiced.sum() >= 2:
        semitones = 12 * np.log2(f0[voiced] / 100.0)
        p10, p50, p90 = np.percentile(semitones, [10, 50, 90])
        times = np.flatnonzero(voiced) * hop_s
        slope = np.polyfit(times, semitones, 1)[0] if np.ptp(times) > 0 else 0.0
        out = [semitones.mean(), semitones.std(), p10, p50, p90, p90 - p10, slope]
    r = np.clip(voicing[voiced], 1e-3, 1 - 1e-3)
    hnr = 10 * np.log10(r / (1 - r)) if len(r) else np.zeros(1)
    return [*out, voiced.sum() / max(speech.sum(), 1), strength.mean(), strength.std(), hnr.mean(), hnr.std()]


def _energy_functionals(energy_db: np.ndarray, speech: np.ndarray, has_audio: np.ndarray) -> list[float]:
    e = energy_db[speech]
    p10, p90 = np.percentile(e, [10, 90])
    delta = np.diff(e) if len(e) > 1 else np.zeros(1)
    return [e.mean(), e.std(), p10, p90, p90 - p10, delta.std(), speech.sum() / max(has_audio.sum(), 1)]


def summarise(frames: dict[str, np.ndarray], power: np.ndarray, spec: Any, active: int) -> np.ndarray:
    """The functional vectors ``(b, n_functionals, 1)`` float32 of a batch.

    ``frames``: the frame families ``{family: (b, rows, n_frames)}``; ``power``: their power
    spectrogram ``(b, n_frames, n_freq)``; frames from ``active`` on are zero padding."""
    b, t, _ = power.shape
    total = power.sum(axis=-1, dtype=np.float64)
    has_audio = total > 0
    energy_db = (10 * np.log10(np.maximum(total, 1e-12))).astype(np.float32)
    speech = speech_mask(energy_db, has_audio, spec.speech_gate_db)
    f0, voicing = pitch_track(power, spec, active)
    stacked = np.concatenate([frames[f] for f in spec.frame_families], axis=1)  # (b, rows, t)
    hop_s = spec.hop_length / spec.sample_rate
    out = np.empty((b, len(functional_names(spec)), 1), np.float32)
    for i in range(b):
        chosen = speech[i]
        if not chosen.any():  # an all-zero window: nothing to describe
            out[i] = 0.0
            continue
        rows = stacked[i][:, chosen]
        mfcc = frames["mfcc"][i][:, chosen]
        delta_std = np.diff(mfcc, axis=1).std(axis=1) if mfcc.shape[1] > 1 else np.zeros(len(mfcc))
        vector = np.concatenate([
            _stats(rows).reshape(-1), delta_std,
            _pitch_functionals(f0[i], voicing[i], chosen, hop_s),
            _energy_functionals(energy_db[i], chosen, has_audio[i]),
        ])
        out[i, :, 0] = np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)
    return out
