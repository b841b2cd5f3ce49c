"""Recording conditions: each promise of ser_pipeline.audio.conditions checked on audio made here."""

from __future__ import annotations

import numpy as np
import pytest

from ser_pipeline.audio.conditions import (
    CODECS,
    CONDITIONS,
    GAIN_RANGE_DB,
    active_speech_level_db,
    apply_condition,
    codec_round_trip,
    coloured_noise,
    condition_rng,
    corrupt_for_training,
    estimate_rt60_s,
    measured_snr_db,
    parse_conditions,
    room_impulse_response,
)

SR = 16_000


def speech_like(sr: int = SR, seconds: float = 2.0, peak: float = 0.1, seed: int = 0, pad_s: float = 0.5):
    """``(samples, active)``: harmonic bursts (f0 110-220 Hz with vibrato) between pauses, after 0.2 s
    of silence and before ``pad_s`` of zero padding; ``active`` marks the burst samples."""
    rng = np.random.default_rng(seed)
    n_speech = int((seconds - pad_s) * sr)
    x, active = np.zeros(n_speech), np.zeros(n_speech, dtype=bool)
    start = int(0.2 * sr)
    while True:
        n = int(rng.uniform(0.2, 0.5) * sr)
        if start + n > n_speech:
            break
        t = np.arange(n) / sr
        phase = 2 * np.pi * np.cumsum(rng.uniform(110, 220) * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / sr
        burst = sum(np.sin(k * phase) / k for k in range(1, 15)) * np.hanning(n) ** 0.3
        x[start:start + n], active[start:start + n] = burst, True
        start += n + int(rng.uniform(0.1, 0.3) * sr)
    x = np.pad(peak * x / np.abs(x).max(), (0, int(seconds * sr) - n_speech))
    return x.astype(np.float32), np.pad(active, (0, len(x) - n_speech))


def babble_pool(sr: int = SR) -> list[np.ndarray]:
    return [speech_like(sr, seconds=1.5, seed=100 + i)[0] for i in range(6)]


def band_power(x: np.ndarray, sr: int, low: float, high: float) -> float:
    f = np.fft.rfftfreq(len(x), 1 / sr)
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(power[(f >= low) & (f < high)].mean())


def test_clean_returns_the_input_unchanged():
    x, _ = speech_like()
    y = apply_condition(x, SR, "clean", np.random.default_rng(0))
    assert y.dtype == np.float32 and np.array_equal(y, x) and y is not x


def test_active_speech_level_ignores_silence_and_padding():
    x, active = speech_like()
    level = active_speech_level_db(x, SR)
    padded = np.concatenate([np.zeros(SR), x, np.zeros(3 * SR)])
    assert active_speech_level_db(padded, SR) == pytest.approx(level, abs=0.01)
    # the level is that of the bursts themselves, not of the clip with its pauses
    burst_db = 10 * np.log10(np.mean(x[active].astype(np.float64) ** 2))
    assert level == pytest.approx(burst_db, abs=0.5)
    assert 10 * np.log10(np.mean(x.astype(np.float64) ** 2)) < level - 1
    assert active_speech_level_db(np.zeros(SR), SR) == float("-inf")


@pytest.mark.parametrize("snr_db", [30, 20, 10, 0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown", "babble", "snr"])
def test_noise_is_added_at_the_requested_snr(kind, snr_db):
    x, active = speech_like()
    y = apply_condition(x, SR, f"{kind}{snr_db}", np.random.default_rng(snr_db), babble=babble_pool())
    assert y.shape == x.shape and y.dtype == np.float32
    assert measured_snr_db(x, y, SR) == pytest.approx(snr_db, abs=0.5)
    noise_db = 10 * np.log10(np.mean((y.astype(np.float64) - x) ** 2))
    assert 10 * np.log10(np.mean(x[active].astype(np.float64) ** 2)) - noise_db == pytest.approx(snr_db, abs=0.5)


def test_babble_without_a_pool_is_refused():
    x, _ = speech_like()
    with pytest.raises(ValueError, match="babble"):
        apply_condition(x, SR, "babble20", np.random.default_rng(0))


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_has_the_spectral_slope_it_claims(kind, slope):
    from scipy.signal import welch

    noise = coloured_noise(kind, 2**17, np.random.default_rng(3))
    assert noise.dtype == np.float32 and np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    f, power = welch(noise, fs=1.0, nperseg=4096)
    fit = (f >= 2e-3) & (f <= 0.25)
    fitted, _ = np.polyfit(np.log10(f[fit]), np.log10(power[fit]), 1)
    assert fitted == pytest.approx(slope, abs=0.1)


def test_rt60_estimate_of_an_exponential_decay():
    t = np.arange(int(1.0 * SR)) / SR
    rir = np.random.default_rng(0).standard_normal(len(t)) * 10 ** (-3 * t / 0.5)  # -60 dB at 0.5 s
    assert estimate_rt60_s(rir, SR) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("rt60_s", [0.3, 0.6, 0.9])
def test_room_impulse_response_has_the_requested_rt60(rt60_s):
    for seed in range(3):
        rir = room_impulse_response(SR, np.random.default_rng(seed), rt60_s=rt60_s)
        assert rir.dtype == np.float32 and rir.ndim == 1
        assert estimate_rt60_s(rir, SR) == pytest.approx(rt60_s, rel=0.1)


def test_drawn_rooms_have_rt60_in_range_and_differ():
    rirs = [room_impulse_response(SR, np.random.default_rng(seed)) for seed in range(8)]
    rt60s = [estimate_rt60_s(rir, SR) for rir in rirs]
    assert all(0.27 <= rt60 <= 0.95 for rt60 in rt60s) and len(set(np.round(rt60s, 3))) == len(rt60s)


def test_reverb_keeps_length_and_level_and_changes_the_sound():
    x, _ = speech_like()
    for seed in range(3):
        y = apply_condition(x, SR, "reverb", np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32 and not np.allclose(y, x)
        # far from the talker in a live room the direct sound is a small part of what arrives
        assert np.corrcoef(x, y)[0, 1] > 0.1
        assert active_speech_level_db(y, SR) == pytest.approx(active_speech_level_db(x, SR), abs=1.0)


def test_reverb_removes_the_direct_path_delay():
    click = np.zeros(SR, dtype=np.float32)
    click[4000] = 0.5
    for seed in range(5):
        y = np.abs(apply_condition(click, SR, "reverb", np.random.default_rng(seed)))
        # the direct sound arrives with the click, not 1-4 m (3-12 ms) later
        assert y[:4000].max() < 1e-4 * y.max() and y[4000] > 0.2 * y.max()


def test_gain_scales_by_the_drawn_gain():
    x, _ = speech_like(peak=0.05)  # +6 dB keeps it below full scale
    gains = []
    for seed in range(5):
        gain_db = np.random.default_rng(seed).uniform(*GAIN_RANGE_DB)  # the one number "gain" draws
        y = apply_condition(x, SR, "gain", np.random.default_rng(seed))
        np.testing.assert_allclose(y, x * 10 ** (gain_db / 20), rtol=1e-5, atol=1e-9)
        measured = active_speech_level_db(y, SR) - active_speech_level_db(x, SR)
        assert measured == pytest.approx(gain_db, abs=0.01)
        gains.append(gain_db)
    assert len(set(gains)) == 5


def test_gain_clips_at_full_scale_like_a_recorder():
    x, _ = speech_like(peak=0.9)
    seed = next(s for s in range(100) if np.random.default_rng(s).uniform(*GAIN_RANGE_DB) > 2.0)
    y = apply_condition(x, SR, "gain", np.random.default_rng(seed))
    assert y.max() == 1.0 and y.min() == -1.0


@pytest.mark.parametrize("sr", [16_000, 22_050])
def test_telephone_keeps_the_band_and_removes_the_rest(sr):
    noise = 0.05 * coloured_noise("white", 2 * sr, np.random.default_rng(1))
    y = apply_condition(noise, sr, "telephone", np.random.default_rng(0))
    assert y.shape == noise.shape and y.dtype == np.float32
    band = band_power(y, sr, 300, 3400)
    assert 10 * np.log10(band_power(y, sr, 0, 300) / band) < -20
    assert 10 * np.log10(band_power(y, sr, 3400, sr / 2) / band) < -20
    assert 10 * np.log10(band / band_power(noise, sr, 300, 3400)) == pytest.approx(0.0, abs=1.0)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("compression_level", [0.6, 0.99])
def test_codec_round_trip_keeps_length_and_waveform(codec, compression_level):
    x, _ = speech_like(sr=22_050, seconds=1.5, peak=0.3)
    y = codec_round_trip(x, 22_050, codec, compression_level)
    assert y.shape == x.shape and y.dtype == np.float32 and not np.array_equal(y, x)
    assert np.corrcoef(x, y)[0, 1] > 0.9


def test_codec_condition_keeps_length_and_waveform():
    x, _ = speech_like(seconds=1.5, peak=0.3)
    for seed in range(4):
        y = apply_condition(x, SR, "codec", np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32 and not np.array_equal(y, x)
        assert np.corrcoef(x, y)[0, 1] > 0.9


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda x, seed, pool: apply_condition(x, SR, "mix", condition_rng(seed, "mix", "utt"), babble=pool),
        lambda x, seed, pool: corrupt_for_training(x, SR, condition_rng(seed, "train", "utt"), babble=pool),
    ],
    ids=["mix", "corrupt_for_training"],
)
def test_random_corruptions_are_valid_and_seeded(corrupt):
    x, _ = speech_like(peak=0.5)
    pool = babble_pool()
    outputs = []
    for seed in range(6):
        y = corrupt(x, seed, pool)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0
        assert np.array_equal(corrupt(x, seed, pool), y)
        outputs.append(y)
    assert all(not np.array_equal(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1:])


def test_every_named_condition_keeps_length_dtype_and_range():
    x, _ = speech_like(seconds=1.0, peak=0.8, pad_s=0.2)
    for condition in CONDITIONS:
        y = apply_condition(x, SR, condition, condition_rng(0, condition, "utt"), babble=babble_pool())
        assert y.shape == x.shape and y.dtype == np.float32, condition
        assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0, condition


def test_condition_rng_is_deterministic_and_order_independent():
    def draw(seed, condition, key):
        return condition_rng(seed, condition, key).random(4)

    forward = {key: draw(1, "snr20", key) for key in ["a", "b", "c"]}
    backward = {key: draw(1, "snr20", key) for key in ["c", "b", "a"]}
    assert all(np.array_equal(forward[key], backward[key]) for key in forward)
    assert not np.array_equal(draw(1, "snr20", "a"), draw(2, "snr20", "a"))
    assert not np.array_equal(draw(1, "snr20", "a"), draw(1, "reverb", "a"))
    assert not np.array_equal(draw(1, "snr20", "a"), draw(1, "snr20", "b"))


def test_parse_conditions_accepts_the_documented_names():
    assert parse_conditions(",".join(CONDITIONS)) == list(CONDITIONS)
    assert parse_conditions("clean,snr20,reverb") == ["clean", "snr20", "reverb"]
    assert parse_conditions(" clean, SNR20 ,snr20,pink-5,white60,brown-10,babble5,clean") == [
        "clean", "snr20", "pink-5", "white60", "brown-10", "babble5",
    ]


@pytest.mark.parametrize("text, unknown", [("clean,loud", "loud"), ("snr61", "snr61"), ("snr-11", "snr-11"),
                                           ("snr2.5", "snr2.5"), ("pinky20", "pinky20")])
def test_parse_conditions_rejects_unknown_names(text, unknown):
    with pytest.raises(ValueError) as error:
        parse_conditions(text)
    assert repr(unknown) in str(error.value) and "telephone" in str(error.value)


def test_parse_conditions_rejects_an_empty_list():
    with pytest.raises(ValueError, match="no condition"):
        parse_conditions(" , ")
