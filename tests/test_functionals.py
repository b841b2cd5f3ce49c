import numpy as np
import pytest

from ser_pipeline.features.spec import FeatureSpec

from ser_pipeline.features.frames import extract_features
from ser_pipeline.features.functionals import functional_names

SR = 22_050


def _harmonic(f0: float, seconds: float, rng=None) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    return (0.1 * y / np.abs(y).max()).astype(np.float32)


def _vector(clip: np.ndarray, spec: FeatureSpec) -> dict[str, float]:
    values = extract_features([clip], spec)["functionals"][0, :, 0]
    return dict(zip(functional_names(spec), values))


def test_the_version_1_spec_keeps_its_hash_and_functionals_get_their_own():
    assert FeatureSpec().hash == "a89ab26db6185ccd"  # features stored before version 2 stay readable
    spec = FeatureSpec(output="functionals")
    assert spec.hash != FeatureSpec().hash
    assert spec.shapes == {"functionals": (len(functional_names(spec)), 1)}
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_the_pitch_of_a_harmonic_tone_is_found_and_it_is_voiced(f0):
    v = _vector(_harmonic(f0, 2.0), FeatureSpec(output="functionals"))
    assert 100 * 2 ** (v["pitch_p50"] / 12) == pytest.approx(f0, rel=0.02)
    assert v["voiced_share"] > 0.9 and v["voicing_mean"] > 0.8 and v["pitch_std"] < 0.3


def test_white_noise_is_not_voiced():
    noise = np.random.default_rng(0).normal(0, 0.05, 2 * SR).astype(np.float32)
    v = _vector(noise, FeatureSpec(output="functionals"))
    assert v["voiced_share"] < 0.2 and v["voicing_mean"] < 0.5


def test_statistics_pool_over_speech_frames_not_over_pauses():
    spec = FeatureSpec(output="functionals")
    speech = _harmonic(180.0, 1.5)
    rng = np.random.default_rng(1)
    pause = rng.normal(0, 10 ** (-60 / 20), SR).astype(np.float32)  # 1 s of quiet room tone
    alone, padded = _vector(speech, spec), _vector(np.concatenate([pause, speech, pause]), spec)
    frames = FeatureSpec()
    mel_alone = extract_features([speech], frames)["mel"][0, 20, : 1 + len(speech) // frames.hop_length]
    mel_padded = extract_features([np.concatenate([pause, speech, pause])], frames)["mel"][0, 20, : 1 + 3 * SR // frames.hop_length]
    assert abs(mel_padded.mean() - mel_alone.mean()) > 10  # over every frame the pauses move the mean by tens of dB
    for name in ("mfcc0_mean", "mel20_mean", "energy_mean"):  # over speech frames it stays within ~1 dB or 5 %
        assert abs(padded[name] - alone[name]) < max(1.5, 0.05 * abs(alone[name])), name
    assert abs(padded["pitch_p50"] - alone["pitch_p50"]) < 0.1  # semitones
    assert padded["speech_share"] < 0.6 < alone["speech_share"]


def test_every_entry_is_finite_even_for_silence():
    spec = FeatureSpec(output="functionals")
    out = extract_features([np.zeros(SR, np.float32), _harmonic(150.0, 0.2)], spec)["functionals"]
    assert out.shape == (2, len(functional_names(spec)), 1) and np.isfinite(out).all()
