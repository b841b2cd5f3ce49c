"""Audio features for the emotion model: MFCC, chroma, mel spectrogram (dB), spectral contrast.

What the features are is fixed by one frozen :class:`FeatureSpec`; its :attr:`FeatureSpec.hash`
versions every stored feature row, so a model never runs on features made another way.

Default recipe (the seed's): 22 050 Hz mono, STFT with a 2048-sample Hann window, hop 512,
centred frames with zero padding (librosa's ``center=True, pad_mode="constant"``); each clip
is exactly 173 frames (``n_samples = 172 * 512 = 88 064`` samples, ~3.99 s). Families and
rows per frame: 40 MFCC, 12 chroma (tuning fixed at 0), a 128-band Slaney mel spectrogram in
dB (``power_to_db``, ref 1.0, top_db 80, per clip) and 7 spectral-contrast rows (6 octave
bands above 200 Hz plus the band below).

Clip length policy
------------------
* A clip of at most ``n_samples`` samples is **zero-padded at the end** to ``n_samples``
  (``pad="end"``; the speech keeps its onset at frame 0, the padding reads as silence).
* A longer clip is cut into **overlapping windows** of ``n_samples``: starts every
  ``window_hop_frames * hop_length`` samples (86 frames, ~2 s, i.e. 50 % overlap), plus one
  window aligned to the clip's end when the regular grid leaves a tail uncovered, so no audio
  is dropped. When that gives more than ``max_windows`` windows, ``max_windows`` starts are
  spread evenly from the first to the last possible start (the whole utterance stays covered,
  with less overlap). Training treats every window as an example; inference averages the
  class probabilities of an utterance's windows.

Speed
-----
:func:`extract_features` computes ONE STFT per clip (vectorised over a batch of clips) and
derives all four families from it with cached filter banks: the mel bank as a sparse matrix,
the chroma bank (tuning 0: no per-call tuning estimation), the DCT-II matrix for MFCC and the
contrast octave bands. librosa's spectral contrast sorts every band of every clip one at a
time along the strided frequency axis; here the narrow bands (one bin per side) take min/max
and the wide ones one SIMD sort over the whole batch along the contiguous axis (same values,
same means). :func:`extract_features_naive` is the plain recipe, one
librosa call per family and clip, kept as the reference the tests and the benchmark compare
against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

FAMILIES: tuple[str, ...] = ("mfcc", "chroma", "mel", "contrast")
FUNCTIONALS = "functionals"  # the one family of a spec with ``output="functionals"``

# Fields added after version 1; left out of the hash at their defaults, so features stored
# under a version-1 spec keep their hash and stay readable.
_LATER_FIELDS = {"output": "frames", "pitch_fmin": 70.0, "pitch_fmax": 450.0, "speech_gate_db": 35.0}


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides the feature values; hashed into :attr:`hash`."""

    sample_rate: int = 22_050
    n_fft: int = 2048
    hop_length: int = 512
    window: str = "hann"
    center: bool = True
    stft_pad_mode: str = "constant"
    n_frames: int = 173
    n_mfcc: int = 40
    n_chroma: int = 12
    chroma_tuning: float = 0.0
    n_mels: int = 128
    mel_fmin: float = 0.0
    mel_fmax: float | None = None  # None: Nyquist
    top_db: float = 80.0  # dB floor below each clip's peak (mel, MFCC, contrast); librosa's MFCC fixes 80
    n_bands: int = 6
    contrast_fmin: float = 200.0
    contrast_quantile: float = 0.02
    pad: Literal["end"] = "end"  # short clips: zeros appended after the audio
    window_hop_frames: int = 86  # long clips: window starts this many frames apart
    max_windows: int = 8  # long clips: at most this many windows per utterance
    version: int = 1  # bump when the computation changes without a parameter changing
    output: Literal["frames", "functionals"] = "frames"  # frame matrices, or statistics over speech frames
    pitch_fmin: float = 70.0  # F0 search range (Hz) of the functionals' pitch track
    pitch_fmax: float = 450.0
    speech_gate_db: float = 35.0  # speech frames: within this many dB of the window's loudest frame

    def __post_init__(self) -> None:
        if not self.center:
            raise ValueError("only centred frames (center=True) are implemented: n_frames = 1 + n_samples // hop")
        if self.pad != "end":
            raise ValueError(f"unsupported pad policy {self.pad!r}; only 'end' is implemented")
        if self.n_frames < 1 or self.window_hop_frames < 1 or self.max_windows < 1:
            raise ValueError("n_frames, window_hop_frames and max_windows must be positive")
        if self.contrast_fmin * 2.0 ** (self.n_bands - 1) >= self.sample_rate / 2:
            raise ValueError("contrast bands exceed Nyquist: reduce contrast_fmin or n_bands")
        if self.output not in ("frames", "functionals"):
            raise ValueError(f"unknown output {self.output!r}; choose 'frames' or 'functionals'")
        if not 0 < self.pitch_fmin < self.pitch_fmax or self.sample_rate / self.pitch_fmin >= self.n_fft // 2:
            raise ValueError("pitch range must satisfy 0 < pitch_fmin < pitch_fmax and sample_rate / pitch_fmin < n_fft / 2")

    @classmethod
    def from_settings(cls, settings=None, **changes) -> "FeatureSpec":
        """The spec at the configured sample rate (``SER_SAMPLE_RATE``), with ``changes`` applied."""
        from .settings import get_settings

        settings = settings or get_settings()
        return cls(**{"sample_rate": settings.sample_rate, **changes})

    @property
    def n_samples(self) -> int:
        """Samples per window: the shortest length that gives ``n_frames`` centred frames."""
        return (self.n_frames - 1) * self.hop_length

    @property
    def window_hop_samples(self) -> int:
        return self.window_hop_frames * self.hop_length

    @property
    def frame_families(self) -> dict[str, int]:
        """Rows per frame of the frame-level families every spec computes first."""
        return {"mfcc": self.n_mfcc, "chroma": self.n_chroma, "mel": self.n_mels, "contrast": self.n_bands + 1}

    @property
    def families(self) -> dict[str, int]:
        """Rows of every stored feature family, in storage order."""
        if self.output == "functionals":
            from .functionals import functional_names

            return {FUNCTIONALS: len(functional_names(self))}
        return self.frame_families

    @property
    def frames(self) -> int:
        """Columns of every stored family: ``n_frames``, or 1 for functionals."""
        return 1 if self.output == "functionals" else self.n_frames

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{family: (rows, columns)}`` of every stored family."""
        return {name: (rows, self.frames) for name, rows in self.families.items()}

    def to_dict(self) -> dict:
        data = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(**data)

    @property
    def hash(self) -> str:
        """16 hex digits of sha256 over the canonical JSON of every field."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --- clip length policy -----------------------------------------------------------------------


def window_starts(n: int, spec: FeatureSpec) -> list[int]:
    """Start samples of the windows :func:`clip_windows` cuts from a clip of ``n`` samples."""
    size = spec.n_samples
    if n <= size:
        return [0]
    last = n - size
    starts = list(range(0, last + 1, spec.window_hop_samples))
    if starts[-1] != last:
        starts.append(last)
    if len(starts) > spec.max_windows:
        starts = sorted({int(round(s)) for s in np.linspace(0, last, spec.max_windows)})
    return starts


def fix_length(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """``y`` as float32 of exactly ``n_samples``: zero-padded at the end or cut at the end."""
    y = np.asarray(y, dtype=np.float32)
    size = spec.n_samples
    if len(y) >= size:
        return y[:size]
    out = np.zeros(size, dtype=np.float32)
    out[: len(y)] = y
    return out


def clip_windows(y: np.ndarray, spec: FeatureSpec) -> list[np.ndarray]:
    """The fixed-length windows of one mono clip ``(n,)``, each float32 ``(n_samples,)``.

    One zero-padded window for a short clip, overlapping windows for a long one (see the
    module docstring for the policy).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"clip_windows expects a mono clip of shape (n,), got {y.shape}")
    if len(y) == 0:
        raise ValueError("clip_windows got an empty clip")
    return [fix_length(y[s : s + spec.n_samples], spec) for s in window_starts(len(y), spec)]


# --- cached filter banks ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Banks:
    mel: object  # scipy.sparse CSR (n_mels, n_freq), ~2 non-zeros per frequency bin
    chroma_t: np.ndarray  # (n_freq, n_chroma) float32
    dct: np.ndarray  # (n_mfcc, n_mels) float32, orthonormal DCT-II rows
    window: np.ndarray  # (n_fft,) float64: librosa.stft transforms in double precision
    bands: tuple[tuple[int, int, int], ...]  # (first bin, end bin, k) per contrast band


@lru_cache(maxsize=8)
def _banks(spec: FeatureSpec) -> _Banks:
    import librosa
    import scipy.fft
    import scipy.sparse

    mel = librosa.filters.mel(
        sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.mel_fmin, fmax=spec.mel_fmax
    )
    chroma = librosa.filters.chroma(sr=spec.sample_rate, n_fft=spec.n_fft, tuning=spec.chroma_tuning, n_chroma=spec.n_chroma)
    dct = scipy.fft.dct(np.eye(spec.n_mels), type=2, norm="ortho", axis=0)[: spec.n_mfcc]
    window = librosa.filters.get_window(spec.window, spec.n_fft, fftbins=True)  # float64, as librosa.stft

    # The octave bands exactly as librosa.feature.spectral_contrast selects them.
    freq = librosa.fft_frequencies(sr=spec.sample_rate, n_fft=spec.n_fft)
    octa = np.zeros(spec.n_bands + 2)
    octa[1:] = spec.contrast_fmin * (2.0 ** np.arange(0, spec.n_bands + 1))
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(current)
        if k > 0:
            current[idx[0] - 1] = True
        if k == spec.n_bands:
            current[idx[-1] + 1 :] = True
        chosen = np.flatnonzero(current)
        n_take = max(int(np.rint(spec.contrast_quantile * current.sum())), 1)
        end = chosen[-1] + 1 if k == spec.n_bands else chosen[-1]  # librosa drops the top bin below the last band
        bands.append((int(chosen[0]), int(end), n_take))
    return _Banks(
        mel=scipy.sparse.csr_matrix(mel.astype(np.float32)),
        chroma_t=np.ascontiguousarray(chroma.T, dtype=np.float32),
        dct=dct.astype(np.float32),
        window=window,
        bands=tuple(bands),
    )


# --- extraction -------------------------------------------------------------------------------


def _as_batch(clips: Sequence[np.ndarray] | np.ndarray, spec: FeatureSpec) -> np.ndarray:
    if isinstance(clips, np.ndarray) and clips.ndim == 2:
        batch = clips.astype(np.float32, copy=False)
        if batch.shape[1] != spec.n_samples:
            batch = np.stack([fix_length(c, spec) for c in batch])
        return batch
    if isinstance(clips, np.ndarray) and clips.ndim == 1:
        raise ValueError("extract_features expects a batch of clips (n, n_samples) or a list; got one 1-D clip")
    if len(clips) == 0:
        return np.zeros((0, spec.n_samples), dtype=np.float32)
    return np.stack([fix_length(c, spec) for c in clips])


def _power_to_db(power: np.ndarray, top_db: float) -> np.ndarray:
    """librosa's ``power_to_db`` (ref 1.0, amin 1e-10) with the top_db floor per clip (axis 0)."""
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    floor = db.reshape(len(db), -1).max(axis=1) - top_db
    return np.maximum(db, floor.reshape((-1,) + (1,) * (db.ndim - 1)).astype(db.dtype))


def _active_frames(batch: np.ndarray, spec: FeatureSpec) -> int:
    """How many leading frames of the batch's clips can be non-zero.

    Clips shorter than a window are zero-padded at the end; a centred frame that starts past
    a clip's last non-zero sample transforms to exactly zero power, so those frames are not
    transformed or sorted at all (a third of the work for a typical 2-3 s utterance)."""
    n = batch.shape[1]
    nonzero = batch[:, ::-1] != 0
    if not nonzero.any(axis=1).all():
        return spec.n_frames  # an all-zero clip: nothing to gain, keep the plain path
    last = n - int(np.argmax(nonzero, axis=1).min())  # one past the latest non-zero sample
    first_silent = -(-(last + spec.n_fft // 2) // spec.hop_length)  # ceil((last + half) / hop)
    return int(min(spec.n_frames, first_silent))


def _stft_power(batch: np.ndarray, spec: FeatureSpec, window: np.ndarray, frames_buf: np.ndarray, active: int) -> np.ndarray:
    """Power spectrogram ``(b, n_frames, n_freq)`` float32 (frames first, for the matmuls).

    As ``librosa.stft``: the windowed frames are transformed in double precision and the
    result rounded to complex64. Single precision would be faster, but its rounding noise
    is what the contrast valleys of near-silent bands (above a resampler's cut-off) consist
    of, so those values would no longer match librosa's. ``frames_buf`` is a reused
    ``(>= b, n_frames, n_fft)`` float64 workspace. Frames from ``active`` on are all zeros
    (see :func:`_active_frames`) and get zero power without a transform.
    """
    import scipy.fft

    half = spec.n_fft // 2
    padded = np.pad(batch, ((0, 0), (half, half)), mode=spec.stft_pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft, axis=1)[:, :: spec.hop_length][:, :active]
    windowed = np.multiply(frames, window, out=frames_buf[: len(batch), :active])
    spectrum = scipy.fft.rfft(windowed, axis=-1).astype(np.complex64)
    power = np.zeros((len(batch), spec.n_frames, spec.n_fft // 2 + 1), dtype=np.float32)
    power[:, :active] = spectrum.real**2 + spectrum.imag**2
    return power


def _contrast(power: np.ndarray, spec: FeatureSpec, banks: _Banks, active: int) -> np.ndarray:
    """Spectral contrast ``(b, n_bands + 1, n_frames)`` from power ``(b, n_frames, n_freq)``.

    Bins are ranked by power (the same order as by magnitude) and only the selected ones are
    turned into magnitudes. Bands needing one bin per side use min/max; wider selections sort
    along the contiguous frequency axis (numpy's SIMD sort beats a two-sided ``partition``).
    Frames from ``active`` on have zero power: their peak and valley are 0 without sorting.
    """
    b, t, _ = power.shape
    peak = np.zeros((b, len(banks.bands), t))
    valley = np.zeros_like(peak)
    for k, (lo, hi, n_take) in enumerate(banks.bands):
        sub = power[:, :active, lo:hi]
        if n_take == 1:
            valley[:, k, :active] = np.sqrt(sub.min(axis=-1))
            peak[:, k, :active] = np.sqrt(sub.max(axis=-1))
        else:
            ranked = np.sort(sub, axis=-1)
            valley[:, k, :active] = np.sqrt(ranked[..., :n_take]).mean(axis=-1, dtype=np.float64)
            peak[:, k, :active] = np.sqrt(ranked[..., -n_take:]).mean(axis=-1, dtype=np.float64)
    return _power_to_db(peak, spec.top_db) - _power_to_db(valley, spec.top_db)


def _extract_batch(batch: np.ndarray, spec: FeatureSpec, banks: _Banks, frames_buf: np.ndarray) -> dict[str, np.ndarray]:
    active = _active_frames(batch, spec)
    power = _stft_power(batch, spec, banks.window, frames_buf, active)  # (b, t, f)
    frames = _frame_families(power, spec, banks, active)
    if spec.output == "functionals":
        from .functionals import summarise

        return {FUNCTIONALS: summarise(frames, power, spec, active)}
    return frames


def _frame_families(power: np.ndarray, spec: FeatureSpec, banks: _Banks, active: int) -> dict[str, np.ndarray]:
    b, t = len(power), spec.n_frames
    flat = power.reshape(b * t, -1)
    mel = np.asarray((banks.mel @ flat.T).T, dtype=np.float32)
    mel_db = _power_to_db(mel.reshape(b, t, spec.n_mels), spec.top_db)  # (b, t, n_mels)
    mfcc = mel_db @ banks.dct.T  # (b, t, n_mfcc)
    chroma = flat @ banks.chroma_t
    norm = chroma.max(axis=1, keepdims=True)
    norm[norm < np.finfo(np.float32).tiny] = 1.0
    chroma = (chroma / norm).reshape(b, t, spec.n_chroma)
    return {
        "mfcc": mfcc.transpose(0, 2, 1),
        "chroma": chroma.transpose(0, 2, 1),
        "mel": mel_db.transpose(0, 2, 1),
        "contrast": _contrast(power, spec, banks, active),
    }


def extract_features(
    clips: Sequence[np.ndarray] | np.ndarray, spec: FeatureSpec | None = None, *, batch_size: int = 4
) -> dict[str, np.ndarray]:
    """All feature families of ``clips``: ``{family: (n, rows, spec.frames) float32}``.

    ``clips`` is an array ``(n, n_samples)`` or a sequence of 1-D clips; a clip of another
    length is zero-padded at the end or cut to ``n_samples`` (use :func:`clip_windows` first
    to keep all of a long clip). For ``output="frames"`` equal to :func:`extract_features_naive`
    within float32 rounding (see ``tests/test_features.py`` for the tolerance); for
    ``output="functionals"`` the frame families and a pitch track are summarised over each
    window's speech frames (``functionals.py``).
    """
    spec = spec or FeatureSpec()
    with one_blas_thread():
        return _extract_all(_as_batch(clips, spec), spec, batch_size)


def one_blas_thread():
    """BLAS on one thread while features are extracted. The matrix products here are small
    (a few MB); a multi-threaded OpenBLAS spends more time waking and spinning its threads
    than multiplying, and measured 2.5x more CPU per clip on 2 cores. Parallelism comes from
    threads over clips instead (``nightly.extract_batch``: one thread per recording stretch).
    threadpoolctl's limits are process-wide: callers running several extraction threads
    hold one limit around all of them."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _extract_all(batch: np.ndarray, spec: FeatureSpec, batch_size: int = 4) -> dict[str, np.ndarray]:
    banks = _banks(spec)
    out = {name: np.empty((len(batch), *shape), dtype=np.float32) for name, shape in spec.shapes.items()}
    frames_buf = np.empty((min(batch_size, max(len(batch), 1)), spec.n_frames, spec.n_fft))
    for start in range(0, len(batch), batch_size):
        part = _extract_batch(batch[start : start + batch_size], spec, banks, frames_buf)
        for name in out:
            out[name][start : start + batch_size] = part[name]
    return out


def extract_features_naive(clips: Sequence[np.ndarray] | np.ndarray, spec: FeatureSpec | None = None) -> dict[str, np.ndarray]:
    """The reference recipe: each frame family from the signal by its own librosa call, clip by clip."""
    import librosa

    spec = spec or FeatureSpec()
    if spec.output != "frames":
        raise ValueError("extract_features_naive is the reference for frame families only (output='frames')")
    batch = _as_batch(clips, spec)
    common = dict(sr=spec.sample_rate, n_fft=spec.n_fft, hop_length=spec.hop_length, window=spec.window,
                  center=spec.center, pad_mode=spec.stft_pad_mode)
    out: dict[str, list[np.ndarray]] = {name: [] for name in FAMILIES}
    for y in batch:
        out["mfcc"].append(librosa.feature.mfcc(y=y, n_mfcc=spec.n_mfcc, n_mels=spec.n_mels, fmin=spec.mel_fmin,
                                                fmax=spec.mel_fmax, **common))  # librosa fixes top_db=80 here
        out["chroma"].append(librosa.feature.chroma_stft(y=y, n_chroma=spec.n_chroma, tuning=spec.chroma_tuning, **common))
        mel = librosa.feature.melspectrogram(y=y, n_mels=spec.n_mels, fmin=spec.mel_fmin, fmax=spec.mel_fmax, **common)
        out["mel"].append(librosa.power_to_db(mel, top_db=spec.top_db))
        out["contrast"].append(librosa.feature.spectral_contrast(y=y, n_bands=spec.n_bands, fmin=spec.contrast_fmin,
                                                                 quantile=spec.contrast_quantile, **common))
    return {
        name: (np.stack(arrays) if arrays else np.zeros((0, spec.families[name], spec.n_frames))).astype(np.float32)
        for name, arrays in out.items()
    }
