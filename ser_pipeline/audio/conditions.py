"""Recording conditions, generated in code and seeded: for evaluation and for training.

Evaluation applies one named condition to every clean test clip ("how does the model do on
noisy / reverberant / telephone / lossy audio"); training corrupts clips at random
(``corrupt_for_training``). Every condition takes a ``numpy.random.Generator``;
``condition_rng(seed, condition, key)`` gives each (seed, condition, utterance) its own, so a
clip's corruption does not depend on which other clips are processed or in what order.

What each condition models:

- ``clean``: the clip as recorded.
- ``snrN``: a noisy room at N dB SNR, noise kind drawn (white, pink, brown; babble when a
  pool of other speakers' clips is given). ``whiteN`` / ``pinkN`` / ``brownN`` / ``babbleN``
  fix the kind: white is electronic hiss, pink and brown the rumble of ventilation and
  traffic (power falling as 1/f and 1/f^2), babble a cafe of 3-6 other talkers.
- ``reverb``: a room (shoebox, RT60 0.3-0.9 s, talker 1-4 m from the microphone).
- ``gain``: a recorder level set too low or too high (-30..+6 dB; loud clips clip).
- ``telephone``: a narrowband line, 300-3400 Hz through an 8 kHz channel.
- ``codec``: a lossy file at a low bitrate (MP3, Ogg Vorbis or Ogg Opus).
- ``mix``: a plausible field recording: room, noise, recorder gain, maybe a phone or a codec.

SNR is measured over *active speech* (``active_speech_level_db``, a simplified ITU-T P.56),
not over the whole clip: pauses and zero padding would otherwise lower the speech power, so
the same clip padded with silence would get less noise and a nominal "10 dB" would mean a
different degradation for every clip. Noise power is the plain mean over the clip, since
noise is (near) stationary. Every condition returns float32 of the input's length, clipped
to [-1, 1] as a real recorder would.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from collections.abc import Sequence
from math import gcd

import numpy as np

_KINDS = ("white", "pink", "brown")
_PARAMETRIC = re.compile(r"(snr|white|pink|brown|babble)(-?\d+)")
_SNR_RANGE = (-10, 60)
CONDITIONS: tuple[str, ...] = (
    "clean", "snr30", "snr20", "snr10", "snr0", "white20", "pink20", "brown20", "babble20",
    "reverb", "gain", "telephone", "codec", "mix",
)
# codec: (format, subtype, sample rates the encoder takes (others go through 16 kHz), the
# compression_level range drawn: ~35-25 kbps MP3, ~55-40 kbps Vorbis (its floor), ~30-9 kbps Opus)
_CODECS = {
    "mp3": ("MP3", "MPEG_LAYER_III", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), (0.6, 0.99)),
    "vorbis": ("OGG", "VORBIS", None, (0.6, 1.0)),
    "opus": ("OGG", "OPUS", (8000, 12000, 16000, 24000, 48000), (0.9, 0.99)),
}
CODECS: tuple[str, ...] = tuple(_CODECS)
GAIN_RANGE_DB = (-30.0, 6.0)
TRAINING_GAIN_RANGE_DB = (-20.0, 6.0)
_SPEED_OF_SOUND = 343.0
_SABINE = 24 * math.log(10) / _SPEED_OF_SOUND  # RT60 = _SABINE * V / A (A: absorption area, m^2)
_ISM_ORDER = 4  # image sources up to this order give the early reflections; a modelled tail the rest


def _parse_one(name: str) -> str:
    name = name.strip().lower()
    if name in CONDITIONS:
        return name
    match = _PARAMETRIC.fullmatch(name)
    if match and _SNR_RANGE[0] <= int(match[2]) <= _SNR_RANGE[1]:
        return f"{match[1]}{int(match[2])}"
    raise ValueError(
        f"unknown condition {name!r}; valid: {', '.join(CONDITIONS)}, or snrN/whiteN/pinkN/brownN/babbleN "
        f"with integer N (dB) in {_SNR_RANGE[0]}..{_SNR_RANGE[1]}"
    )


def parse_conditions(text: str) -> list[str]:
    """``"clean,snr20,reverb"`` -> ``["clean", "snr20", "reverb"]``: canonical, deduplicated, in order."""
    names = [_parse_one(part) for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"no condition given in {text!r}; valid: {', '.join(CONDITIONS)}")
    return list(dict.fromkeys(names))


def condition_rng(seed: int, condition: str, key: str) -> np.random.Generator:
    """A generator fixed by (seed, condition, utterance key) alone, whatever order clips come in."""
    digest = hashlib.sha256(f"{seed}\x1f{condition}\x1f{key}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest, "big")))


def active_speech_level_db(samples: np.ndarray, sample_rate: int) -> float:
    """Mean power (dB re full scale) of the 20 ms frames within 35 dB of the loudest frame.

    Frames below that, or below -100 dBFS, are pauses, leading/trailing silence or padding
    and do not count. ``-inf`` for a silent clip.
    """
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        return float("-inf")
    starts = np.arange(0, len(x), max(1, round(0.02 * sample_rate)))
    # the last, partial frame is averaged over its own samples
    power = np.add.reduceat(x**2, starts) / np.diff(np.append(starts, len(x)))
    active = power[(power >= power.max() * 10 ** -3.5) & (power > 1e-10)]
    return float(10 * np.log10(active.mean())) if active.size else float("-inf")


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 noise of unit RMS whose power falls as 1/f^0 (white), 1/f (pink), 1/f^2 (brown)."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(kind)
    if exponent is None:
        raise ValueError(f"unknown noise kind {kind!r}; valid: {', '.join(_KINDS)}")
    x = rng.standard_normal(n)
    if exponent and n > 1:
        f = np.fft.rfftfreq(n)
        shape = np.zeros_like(f)
        shape[1:] = f[1:] ** (-exponent / 2)  # amplitude is the square root of the power slope
        x = np.fft.irfft(np.fft.rfft(x) * shape, n)
    rms = np.sqrt(np.mean(x**2)) if n else 0.0
    return (x / rms if rms > 0 else x).astype(np.float32)


def babble_noise(pool: Sequence[np.ndarray], n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """``(n,)`` float32: 3-6 clips from ``pool`` at equal active level, each looped from a random offset."""
    if not pool:
        raise ValueError("babble needs a pool of other speakers' clips")
    count = int(rng.integers(3, 7))
    out = np.zeros(n)
    for i in rng.choice(len(pool), count, replace=len(pool) < count):
        clip = np.asarray(pool[i], dtype=np.float64)
        level = active_speech_level_db(clip, sample_rate)
        if np.isfinite(level):
            out += np.resize(np.roll(clip, -int(rng.integers(len(clip)))), n) / 10 ** (level / 20)
    if not out.any():
        raise ValueError("the babble pool holds only silent clips")
    return out.astype(np.float32)


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float, sample_rate: int) -> np.ndarray:
    """``samples + g * noise`` with g such that active-speech power / noise power is ``snr_db``.

    Both ``(n,)``; float32 out, *not* clipped (``apply_condition`` clips at the end of the chain).
    """
    x, v = np.asarray(samples, dtype=np.float64), np.asarray(noise, dtype=np.float64)
    if v.shape != x.shape:
        raise ValueError(f"noise has shape {v.shape}, samples {x.shape}")
    noise_power = np.mean(v**2)
    if not noise_power > 0:
        raise ValueError("the noise is silent and cannot be scaled to an SNR")
    target_db = active_speech_level_db(x, sample_rate) - snr_db
    return (x + v * np.sqrt(10 ** (target_db / 10) / noise_power)).astype(np.float32)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray, sample_rate: int) -> float:
    """Active speech level of ``clean`` minus the mean power of ``noisy - clean``, in dB (inf if equal)."""
    residual = np.asarray(noisy, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return active_speech_level_db(clean, sample_rate) - float(10 * np.log10(np.mean(residual**2)))


def room_impulse_response(sample_rate: int, rng: np.random.Generator, rt60_s: float | None = None) -> np.ndarray:
    """``(m,)`` float32 RIR of a random shoebox room, direct path at sample 0 (amplitude 1/(4 pi r)).

    RT60 ``rt60_s`` or drawn in 0.3-0.9 s; talker 1-4 m from the microphone. pyroomacoustics
    gives the image sources to order 4 (direct path, early reflections; delays rounded to the
    sample); the late tail is Gaussian noise decaying at exactly the RT60 with the diffuse-field
    energy 1/(pi A) (A: Sabine absorption area), rising over one mean free time; the early
    reflections come on top (a little more early energy than theory; T30 within ~5% of RT60).
    A full image model to 0.9 s takes > 1 s per room and overshoots the Sabine RT60 by ~30%;
    this takes ~1 ms, so every clip gets its own room (no cached bank) and the RT60 asked for.
    """
    import pyroomacoustics as pra

    rt60 = float(rt60_s) if rt60_s is not None else float(rng.uniform(0.3, 0.9))
    distance = rng.uniform(1.0, 4.0)
    dims = np.array([rng.uniform(max(3.0, distance + 1.5), 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.5, 4.0)])
    mic, source = _placement(dims, distance, rng)
    volume, surface = np.prod(dims), 2 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
    area = _SABINE * volume / rt60
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(min(area / surface, 0.99)), max_order=_ISM_ORDER)
    room.add_source(source)
    room.add_microphone(mic)
    room.image_source_model()
    images = room.sources[0]
    dist = np.linalg.norm(images.images - np.asarray(mic)[:, None], axis=0)
    delays = np.round((dist - distance) * sample_rate / _SPEED_OF_SOUND).astype(int)
    early = images.damping[0] / (4 * np.pi * dist)
    rir = np.zeros(max(delays.max() + 1, int(1.2 * rt60 * sample_rate)))
    np.add.at(rir, delays, early)
    t = np.arange(len(rir)) / sample_rate
    tail = rng.standard_normal(len(rir)) * np.exp(-3 * math.log(10) * t / rt60)
    tail *= 1 - np.exp(-t * _SPEED_OF_SOUND * surface / (4 * volume))
    rir += tail * np.sqrt(1 / (np.pi * area) / np.sum(tail**2))
    return rir.astype(np.float32)


def _placement(dims: np.ndarray, distance: float, rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Microphone and talker ``distance`` m apart at one height (1-2 m), 0.5 m clear of the walls."""
    for _ in range(100):
        mic = rng.uniform([0.5, 0.5, 1.0], [dims[0] - 0.5, dims[1] - 0.5, 2.0])
        angle = rng.uniform(0, 2 * np.pi)
        source = mic + [distance * np.cos(angle), distance * np.sin(angle), 0.0]
        if 0.5 <= source[0] <= dims[0] - 0.5 and 0.5 <= source[1] <= dims[1] - 0.5:
            return mic.tolist(), source.tolist()
    # a room drawn at least distance + 1.5 m long always fits the pair along its length
    return [0.5, dims[1] / 2, 1.5], [0.5 + distance, dims[1] / 2, 1.5]


def estimate_rt60_s(rir: np.ndarray, sample_rate: int) -> float:
    """RT60 from the Schroeder backward integral: the -5..-35 dB slope (T30) extrapolated to 60 dB."""
    energy = np.cumsum(np.asarray(rir, dtype=np.float64)[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(np.maximum(energy / energy[0], 1e-30))
    fit = (edc_db <= -5) & (edc_db >= -35)
    if fit.sum() < 2:
        raise ValueError("the impulse response does not decay by 35 dB")
    slope, _ = np.polyfit(np.flatnonzero(fit) / sample_rate, edc_db[fit], 1)
    return float(-60 / slope)


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if rate == new_rate:
        return x
    g = gcd(rate, new_rate)
    return resample_poly(x, new_rate // g, rate // g)


def _reverb(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import oaconvolve

    # the RIR's direct path sits at sample 0, so the first n samples stay aligned with the input
    wet = oaconvolve(x, room_impulse_response(sample_rate, rng))[: len(x)]
    have, want = active_speech_level_db(wet, sample_rate), active_speech_level_db(x, sample_rate)
    return wet * 10 ** ((want - have) / 20) if np.isfinite(have) and np.isfinite(want) else wet


@functools.lru_cache(maxsize=32)
def _butter(order: int, edges: float | tuple[float, float], kind: str, rate: int) -> np.ndarray:
    from scipy.signal import butter

    return butter(order, edges, kind, fs=rate, output="sos")


def _telephone(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """300-3400 Hz at unity passband gain (in-band level kept), through an 8 kHz channel."""
    from scipy.signal import sosfiltfilt

    rate = min(sample_rate, 8000)
    y = _resample(x, sample_rate, rate)
    # -3 dB points just inside the band, so that 300 and 3400 Hz are ~9 dB down (the two passes)
    # and the line's skirts outside the band stay > 20 dB below it, as a real channel's do
    y = sosfiltfilt(_butter(10, (310.0, min(3350.0, 0.42 * rate)), "bandpass", rate), y)
    return _fit_length(_resample(y, rate, sample_rate), len(x))


def _lowpass(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    from scipy.signal import sosfiltfilt

    # rounded to 100 Hz so the filter cache holds a few designs, not one per clip
    return sosfiltfilt(_butter(8, round(min(cutoff_hz, 0.45 * sample_rate), -2), "lowpass", sample_rate), x)


def codec_round_trip(samples: np.ndarray, sample_rate: int, codec: str, compression_level: float) -> np.ndarray:
    """``(n,)`` float32: ``samples`` encoded in memory with ``codec`` and decoded, same length and alignment.

    ``compression_level`` 0 (best) .. 1 (smallest file), soundfile's knob. Rates an encoder
    does not take go through 16 kHz.
    """
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
    rates = _CODECS[codec][2]
    rate = sample_rate if rates is None or sample_rate in rates else 16000
    y = _resample(_lossy(_resample(np.asarray(samples, dtype=np.float64), sample_rate, rate), rate, codec, compression_level), rate, sample_rate)
    delay = _codec_delay(codec, rate) * sample_rate // rate
    return _fit_length(y[delay:] if delay >= 0 else np.pad(y, (-delay, 0)), len(samples)).astype(np.float32)


def _lossy(x: np.ndarray, rate: int, codec: str, compression_level: float) -> np.ndarray:
    """``x`` written to an in-memory file with ``codec`` and read back (float64, the decoder's length)."""
    import soundfile as sf

    fmt, subtype = _CODECS[codec][:2]
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(x, -1, 1), rate, format=fmt, subtype=subtype, compression_level=compression_level)
    buffer.seek(0)
    return sf.read(buffer, dtype="float64")[0]


@functools.lru_cache(maxsize=32)
def _codec_delay(codec: str, rate: int) -> int:
    """Samples the decoded stream lags the input, measured once per codec and rate on a noise probe.

    The delay (MP3's encoder + decoder delay, Opus's pre-skip) belongs to the codec, not the
    clip: measured on a voiced clip it could lock onto a pitch period. libsndfile 1.2 already
    removes it, so this guard measures 0 there.
    """
    from scipy.signal import correlate

    probe = 0.3 * np.random.default_rng(0).standard_normal(rate // 2)
    decoded = _lossy(probe, rate, codec, float(np.mean(_CODECS[codec][3])))
    corr = correlate(decoded, probe, mode="full", method="fft")
    lags = np.arange(-len(probe) + 1, len(decoded))
    window = np.abs(lags) <= 4096
    return int(lags[window][np.argmax(corr[window])])


def _codec(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    codec = CODECS[int(rng.integers(len(CODECS)))]
    return codec_round_trip(x, sample_rate, codec, float(rng.uniform(*_CODECS[codec][3])))


def _add_random_noise(x: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float,
                      babble: Sequence[np.ndarray] | None, kind: str | None = None) -> np.ndarray:
    kinds = _KINDS + ("babble",) if babble else _KINDS
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    if kind == "babble":
        return add_noise(x, babble_noise(babble or (), len(x), rng, sample_rate), snr_db, sample_rate)
    return add_noise(x, coloured_noise(kind, len(x), rng), snr_db, sample_rate)


def _mono(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got {x.shape}")
    return x


def _gain(x: np.ndarray, rng: np.random.Generator, gain_range_db: tuple[float, float]) -> np.ndarray:
    # the recorder's level: clipping here is what an overdriven preamp does before any channel
    return np.clip(x * 10 ** (rng.uniform(*gain_range_db) / 20), -1, 1)


def apply_condition(
    samples: np.ndarray, sample_rate: int, condition: str, rng: np.random.Generator,
    babble: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """``samples`` ``(n,)`` as recorded under ``condition`` (see the module docstring): ``(n,)`` float32 in [-1, 1].

    ``gain`` draws exactly one number, ``rng.uniform(*GAIN_RANGE_DB)``. ``mix`` runs in signal
    order: room (p 0.7), noise at 5-30 dB, recorder gain (clips), then telephone or codec
    (p 0.3 each). ``babble``: clips of other speakers at ``sample_rate``, needed by ``babbleN``
    and used by ``snrN`` and ``mix``.
    """
    name, x = _parse_one(condition), _mono(samples)
    match = _PARAMETRIC.fullmatch(name)
    if name == "clean":
        y = x.copy()
    elif match:
        kind, snr_db = match[1], float(match[2])
        if kind == "babble" and not babble:
            raise ValueError(f"{name} needs a babble pool of other speakers' clips")
        y = _add_random_noise(x, sample_rate, rng, snr_db, babble, None if kind == "snr" else kind)
    elif name == "reverb":
        y = _reverb(x, sample_rate, rng)
    elif name == "gain":
        y = _gain(x, rng, GAIN_RANGE_DB)
    elif name == "telephone":
        y = _telephone(x, sample_rate)
    elif name == "codec":
        y = _codec(x, sample_rate, rng)
    else:  # mix
        y = _reverb(x, sample_rate, rng) if rng.random() < 0.7 else x
        y = _gain(_add_random_noise(y, sample_rate, rng, rng.uniform(5, 30), babble), rng, GAIN_RANGE_DB)
        channel = rng.random()
        y = _telephone(y, sample_rate) if channel < 0.3 else _codec(y, sample_rate, rng) if channel < 0.6 else y
    return np.clip(y, -1, 1).astype(np.float32)


def corrupt_for_training(
    samples: np.ndarray, sample_rate: int, rng: np.random.Generator, babble: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """One random training corruption of ``samples`` ``(n,)``: ``(n,)`` float32 in [-1, 1].

    Reverb (p 0.5), noise at SNR 0-40 dB (white/pink/brown, babble with a pool), gain
    -20..+6 dB, band limit (p 0.3: telephone or a 3.4-8 kHz low-pass), codec (p 0.2).
    """
    x = _mono(samples)
    y = _reverb(x, sample_rate, rng) if rng.random() < 0.5 else x
    y = _gain(_add_random_noise(y, sample_rate, rng, rng.uniform(0, 40), babble), rng, TRAINING_GAIN_RANGE_DB)
    if rng.random() < 0.3:
        y = _telephone(y, sample_rate) if rng.random() < 0.5 else _lowpass(y, sample_rate, rng.uniform(3400, 8000))
    if rng.random() < 0.2:
        y = _codec(y, sample_rate, rng)
    return np.clip(y, -1, 1).astype(np.float32)
