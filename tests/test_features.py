"""Features: equality with librosa on real speech, shapes, padding and windowing, spec hashing.

Equality measure: for each family, ``max|ours - librosa| / max|librosa|`` over the whole
batch (a relative error scaled by the family's range, so values near zero, e.g. chroma of
silence or MFCC coefficients crossing zero, don't blow it up). It must stay below 1e-4.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ser_pipeline.audio.decode import load_audio
from ser_pipeline.features.frames import extract_features, extract_features_naive
from ser_pipeline.features.spec import FeatureSpec, clip_windows, window_starts

SPEC = FeatureSpec()
TOLERANCE = 1e-4


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours.astype(np.float64) - reference).max() / np.abs(reference).max())


def _real_clips(ravdess_dir, tess_dir) -> list[np.ndarray]:
    ravdess = sorted(ravdess_dir.glob("Actor_0[12]/*.flac"))[::15]  # 8 files, two speakers, mixed emotions
    tess = sorted(tess_dir.glob("*/*.wav"))[::60]  # 7 files, short words (heavily padded)
    clips = []
    for path in ravdess + tess:
        clips.extend(clip_windows(load_audio(path).samples, SPEC))
    return clips


@pytest.mark.realdata
def test_matches_librosa_on_real_speech(ravdess_dir, tess_dir):
    clips = _real_clips(ravdess_dir, tess_dir)
    assert len(clips) >= 15
    ours = extract_features(clips, SPEC)
    naive = extract_features_naive(clips, SPEC)
    for family, rows in SPEC.families.items():
        assert ours[family].shape == naive[family].shape == (len(clips), rows, 173)
        err = relative_error(ours[family], naive[family])
        assert err < TOLERANCE, f"{family}: relative error {err:.2e}"


@pytest.mark.realdata
def test_matches_librosa_calls_directly(ravdess_dir):
    """Against librosa's own functions, not through extract_features_naive."""
    import librosa

    y = clip_windows(load_audio(sorted(ravdess_dir.glob("Actor_03/*.flac"))[20]).samples, SPEC)[0]
    ours = extract_features(y[None, :], SPEC)
    kw = dict(sr=22050, n_fft=2048, hop_length=512, pad_mode="constant")
    expected = {
        "mfcc": librosa.feature.mfcc(y=y, n_mfcc=40, **kw),
        "chroma": librosa.feature.chroma_stft(y=y, tuning=0, **kw),
        "mel": librosa.power_to_db(librosa.feature.melspectrogram(y=y, n_mels=128, **kw)),
        "contrast": librosa.feature.spectral_contrast(y=y, n_bands=6, fmin=200.0, **kw),
    }
    for family, ref in expected.items():
        assert relative_error(ours[family][0], ref) < TOLERANCE, family


def test_shapes_dtype_and_batching_are_consistent():
    rng = np.random.default_rng(0)
    t = np.arange(SPEC.n_samples) / SPEC.sample_rate
    clips = np.stack([np.sin(2 * np.pi * f * t).astype(np.float32) * 0.3 + rng.normal(0, 0.01, t.size).astype(np.float32)
                      for f in (220.0, 440.0, 1000.0, 3000.0, 150.0)])
    whole = extract_features(clips, SPEC, batch_size=5)
    one_by_one = extract_features(list(clips), SPEC, batch_size=2)
    assert set(whole) == {"mfcc", "chroma", "mel", "contrast"}
    for family, rows in SPEC.families.items():
        assert whole[family].dtype == np.float32
        assert whole[family].shape == (5, rows, 173)
        assert np.isfinite(whole[family]).all()
        np.testing.assert_allclose(whole[family], one_by_one[family], rtol=0, atol=1e-5)
    # A 440 Hz tone has its chroma peak on A (index 9 with C at 0) in every frame.
    assert (whole["chroma"][1].argmax(axis=0) == 9).all()
    assert extract_features(np.zeros((0, SPEC.n_samples), np.float32), SPEC)["mel"].shape == (0, 128, 173)


def test_spec_describes_the_recipe_and_hash_versions_it():
    assert SPEC.families == {"mfcc": 40, "chroma": 12, "mel": 128, "contrast": 7}
    assert SPEC.n_samples == 88_064 and 1 + SPEC.n_samples // SPEC.hop_length == 173
    assert len(SPEC.hash) == 16 and SPEC.hash == FeatureSpec().hash
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC
    assert dataclasses.replace(SPEC, max_windows=4).hash != SPEC.hash
    assert dataclasses.replace(SPEC, n_mfcc=20).hash != SPEC.hash
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPEC.n_mfcc = 13  # type: ignore[misc]


def test_short_clip_is_zero_padded_at_the_end():
    y = np.linspace(-0.5, 0.5, 30_000, dtype=np.float32)
    (window,) = clip_windows(y, SPEC)
    assert window.shape == (SPEC.n_samples,) and window.dtype == np.float32
    np.testing.assert_array_equal(window[:30_000], y)
    assert not window[30_000:].any()
    # extract_features pads a short clip the same way.
    direct = extract_features([y], SPEC)["mfcc"]
    np.testing.assert_array_equal(direct, extract_features([window], SPEC)["mfcc"])


def test_long_clip_is_cut_into_overlapping_windows_covering_it():
    n = SPEC.n_samples + 3 * SPEC.window_hop_samples + 1000
    y = np.random.default_rng(1).normal(size=n).astype(np.float32)
    starts = window_starts(n, SPEC)
    assert starts[:4] == [i * SPEC.window_hop_samples for i in range(4)]
    assert starts[-1] == n - SPEC.n_samples  # the tail gets its own end-aligned window
    windows = clip_windows(y, SPEC)
    assert len(windows) == len(starts) == 5
    for start, window in zip(starts, windows):
        np.testing.assert_array_equal(window, y[start : start + SPEC.n_samples])


def test_window_count_is_capped_and_still_covers_the_utterance():
    n = SPEC.n_samples * 20
    starts = window_starts(n, SPEC)
    assert len(starts) == SPEC.max_windows
    assert starts[0] == 0 and starts[-1] == n - SPEC.n_samples
    assert all(b > a for a, b in zip(starts, starts[1:]))
    assert window_starts(SPEC.n_samples, SPEC) == [0]


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="empty"):
        clip_windows(np.zeros(0, np.float32), SPEC)
    with pytest.raises(ValueError, match="mono"):
        clip_windows(np.zeros((2, 100), np.float32), SPEC)
    with pytest.raises(ValueError, match="1-D"):
        extract_features(np.zeros(100, np.float32), SPEC)


def test_threaded_extraction_gives_the_same_values():
    # as nightly.extract_batch runs it: chunks of clips on two threads under one BLAS limit
    from concurrent.futures import ThreadPoolExecutor

    from ser_pipeline.features.frames import one_blas_thread

    spec = FeatureSpec()
    rng = np.random.default_rng(3)
    clips = (0.1 * rng.standard_normal((70, spec.n_samples))).astype(np.float32)
    one = extract_features(clips, spec)
    with one_blas_thread(), ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda start: extract_features(clips[start : start + 16], spec), range(0, 70, 16)))
    threaded = {family: np.concatenate([p[family] for p in parts]) for family in spec.families}
    for family in spec.families:
        np.testing.assert_array_equal(threaded[family], one[family])
