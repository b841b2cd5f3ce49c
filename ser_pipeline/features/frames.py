"""The frame features of a batch of clips: MFCC, chroma, mel spectrogram (dB), spectral contrast.

What they are is fixed by a :class:`~ser_pipeline.features.spec.FeatureSpec` (see there for the
families, the rows of each and the clip length policy).

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

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ser_pipeline.features.spec import FAMILIES, FUNCTIONALS, FeatureSpec, fix_length


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
        from ser_pipeline.features.functionals import summarise

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
    window's speech frames (``functionals.py``); for ``output="embeddings"`` each clip is
    heard by the spec's encoder at its own length, unpadded (``encoder.py``).
    """
    spec = spec or FeatureSpec()
    if spec.output == "embeddings":
        return _embed_all(clips, spec)
    with one_blas_thread():
        return _extract_all(_as_batch(clips, spec), spec, batch_size)


def _embed_all(clips: Sequence[np.ndarray] | np.ndarray, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """``{"embedding": (n, 2 * width, 1)}``: the encoder's pooled embeddings of each window at its own length."""
    from ser_pipeline.features.encoder import embed
    from ser_pipeline.features.spec import EMBEDDING

    if not spec.encoder_dir:
        raise ValueError(f"the embeddings spec of encoder {spec.encoder!r} does not say where its weights lie "
                         "(FeatureSpec.located, or spec_for_encoder with the settings)")
    clips = list(clips)
    if not clips:
        return {EMBEDDING: np.zeros((0, 2 * spec.encoder_width, 1), np.float32)}
    return {EMBEDDING: embed([c[: spec.n_samples] for c in clips], spec.encoder_dir)[:, :, None]}


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
