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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

FAMILIES: tuple[str, ...] = ("mfcc", "chroma", "mel", "contrast")
FUNCTIONALS = "functionals"  # the one family of a spec with ``output="functionals"``
EMBEDDING = "embedding"  # the one family of a spec with ``output="embeddings"``
OUTPUTS = ("frames", "functionals", "embeddings")

# Fields added after version 1; left out of the hash at their defaults, so features stored
# under a version-1 spec keep their hash and stay readable.
_LATER_FIELDS = {"output": "frames", "pitch_fmin": 70.0, "pitch_fmax": 450.0, "speech_gate_db": 35.0,
                 "encoder": "", "encoder_sha256": "", "encoder_width": 0}
_UNHASHED = ("encoder_dir",)


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
    # Frame matrices, statistics over speech frames, or a pretrained encoder's pooled embeddings.
    output: Literal["frames", "functionals", "embeddings"] = "frames"
    pitch_fmin: float = 70.0  # F0 search range (Hz) of the functionals' pitch track
    pitch_fmax: float = 450.0
    speech_gate_db: float = 35.0  # speech frames: within this many dB of the window's loudest frame
    # The encoder of ``output="embeddings"`` (features/encoder.py): its identity is hashed,
    # where its weights lie on this machine is not (a model trained here runs anywhere).
    encoder: str = ""
    encoder_sha256: str = ""
    encoder_width: int = 0  # d_model; the embedding is mean and std over frames: 2 * width rows
    encoder_dir: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.center:
            raise ValueError("only centred frames (center=True) are implemented: n_frames = 1 + n_samples // hop")
        if self.pad != "end":
            raise ValueError(f"unsupported pad policy {self.pad!r}; only 'end' is implemented")
        if self.n_frames < 1 or self.window_hop_frames < 1 or self.max_windows < 1:
            raise ValueError("n_frames, window_hop_frames and max_windows must be positive")
        if self.contrast_fmin * 2.0 ** (self.n_bands - 1) >= self.sample_rate / 2:
            raise ValueError("contrast bands exceed Nyquist: reduce contrast_fmin or n_bands")
        if self.output not in OUTPUTS:
            raise ValueError(f"unknown output {self.output!r}; choose one of {OUTPUTS}")
        if self.output == "embeddings" and not (self.encoder and self.encoder_sha256 and self.encoder_width > 0):
            raise ValueError("an embeddings spec names its encoder: encoder, encoder_sha256 and encoder_width")
        if not 0 < self.pitch_fmin < self.pitch_fmax or self.sample_rate / self.pitch_fmin >= self.n_fft // 2:
            raise ValueError("pitch range must satisfy 0 < pitch_fmin < pitch_fmax and sample_rate / pitch_fmin < n_fft / 2")

    @classmethod
    def from_settings(cls, settings, **changes) -> "FeatureSpec":
        """The spec at the caller's sample rate (``settings.sample_rate``), with ``changes`` applied."""
        return cls(**{"sample_rate": settings.sample_rate, **changes})

    @classmethod
    def for_encoder(cls, source) -> "FeatureSpec":
        """The embeddings spec of an :class:`~ser_pipeline.features.encoder.EncoderSource`: 16 kHz
        windows of up to 30 s (Whisper's 10 ms frames, 3000 of them), 15 s apart in a longer
        utterance, at most 8 per utterance."""
        from ser_pipeline.features import encoder

        return cls(sample_rate=encoder.SAMPLE_RATE, hop_length=encoder.HOP_LENGTH, n_frames=encoder.MAX_MEL_FRAMES + 1,
                   window_hop_frames=encoder.MAX_MEL_FRAMES // 2, output="embeddings", encoder=source.name,
                   encoder_sha256=source.sha256, encoder_width=source.width, encoder_dir=str(source.path))

    def located(self, encoder_dir: str) -> "FeatureSpec":
        """The same spec with its encoder's weights at ``encoder_dir`` on this machine."""
        return replace(self, encoder_dir=str(encoder_dir))

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
            from ser_pipeline.features.functionals import functional_names

            return {FUNCTIONALS: len(functional_names(self))}
        if self.output == "embeddings":
            return {EMBEDDING: 2 * self.encoder_width}
        return self.frame_families

    @property
    def frames(self) -> int:
        """Columns of every stored family: ``n_frames``, or 1 for functionals and embeddings."""
        return self.n_frames if self.output == "frames" else 1

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{family: (rows, columns)}`` of every stored family."""
        return {name: (rows, self.frames) for name, rows in self.families.items()}

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in _UNHASHED:
            del data[name]
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
    module docstring for the policy). An embeddings spec keeps each window unpadded (at most
    ``n_samples``): the encoder hears it at its own length.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"clip_windows expects a mono clip of shape (n,), got {y.shape}")
    if len(y) == 0:
        raise ValueError("clip_windows got an empty clip")
    if spec.output == "embeddings":  # the encoder hears each window at its own length
        return [y[s : s + spec.n_samples].copy() for s in window_starts(len(y), spec)]
    return [fix_length(y[s : s + spec.n_samples], spec) for s in window_starts(len(y), spec)]
