"""The bytes written to disk: audio in the formats libsndfile encodes reproducibly, and CSV with
fixed line endings, so the same seed writes byte-identical files.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import soundfile as sf

_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "aiff": ("AIFF", "PCM_16")}


def _encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encoded audio bytes; the formats offered are the ones libsndfile writes reproducibly."""
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; choose one of {sorted(_FORMATS)}")
    major, subtype = _FORMATS[fmt]
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=major, subtype=subtype)
    return buf.getvalue()


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
