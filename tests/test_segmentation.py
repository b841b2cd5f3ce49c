"""Segmentation on generated signals whose speech and pauses are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser_pipeline.errors import AudioDecodeError
from ser_pipeline.archive.segmentation import (
    Utterance,
    VadConfig,
    frame_levels_db,
    segment_energy,
    segment_file,
    segment_recording,
    stream_frame_levels_db,
    utterance_id,
    utterances_from_turns,
)

SR = 16_000


def _signal(layout, noise_db=-50.0, seed=0, sr=SR):
    """Concatenate ('burst'|'pause', seconds) parts: harmonic tone bursts over steady noise.

    Returns the samples and the true burst spans in seconds.
    """
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for kind, dur in layout:
        n = int(round(dur * sr))
        if kind == "burst":
            tt = np.arange(n) / sr
            f0 = rng.uniform(120, 250)
            tone = sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 6))
            env = np.minimum(1.0, np.minimum(tt, tt[::-1]) / 0.01)  # 10 ms ramps
            parts.append(0.3 * tone * env)
            spans.append((t, t + dur))
        else:
            parts.append(np.zeros(n))
        t += dur
    y = np.concatenate(parts)
    y = y + rng.normal(0, 10 ** (noise_db / 20), y.size)
    return y.astype(np.float32), spans


def _assert_spans_close(found, expected, tol=0.06):
    assert len(found) == len(expected), f"found {found}, expected {expected}"
    for (fa, fb), (ea, eb) in zip(found, expected):
        assert abs(fa - ea) <= tol and abs(fb - eb) <= tol, f"found {found}, expected {expected}"


LAYOUT = [("pause", 0.8), ("burst", 1.5), ("pause", 0.7), ("burst", 2.2), ("pause", 1.0), ("burst", 0.9), ("pause", 0.6)]


def test_bursts_separated_by_pauses_are_found_with_their_boundaries():
    y, truth = _signal(LAYOUT)
    _assert_spans_close(segment_energy(y, SR), truth)


@pytest.mark.parametrize("noise_db", [-70.0, -40.0, -30.0])
def test_threshold_adapts_to_the_noise_floor(noise_db):
    y, truth = _signal(LAYOUT, noise_db=noise_db)
    _assert_spans_close(segment_energy(y, SR), truth)


def test_gain_does_not_change_the_spans():
    y, truth = _signal(LAYOUT, noise_db=-45.0)
    _assert_spans_close(segment_energy(0.05 * y, SR), truth)


def test_short_pause_inside_an_utterance_is_bridged_by_the_hangover():
    y, _ = _signal([("pause", 0.5), ("burst", 1.0), ("pause", 0.12), ("burst", 1.0), ("pause", 0.5)])
    found = segment_energy(y, SR)
    _assert_spans_close(found, [(0.5, 2.62)])


def test_pause_longer_than_the_hangover_splits():
    y, truth = _signal([("pause", 0.5), ("burst", 1.0), ("pause", 0.4), ("burst", 1.0), ("pause", 0.5)])
    _assert_spans_close(segment_energy(y, SR, config=VadConfig(hangover_s=0.2)), truth)


def test_bursts_shorter_than_min_length_are_dropped():
    y, truth = _signal([("pause", 0.5), ("burst", 0.2), ("pause", 0.8), ("burst", 1.2), ("pause", 0.5)])
    _assert_spans_close(segment_energy(y, SR, min_s=0.5), truth[1:])


def test_long_utterances_are_split_at_their_quietest_point():
    # 5 s of speech with a 0.15 s dip (bridged by the hangover) at 2.5 s, max 3 s per utterance.
    y, _ = _signal([("pause", 0.5), ("burst", 2.5), ("pause", 0.15), ("burst", 2.35), ("pause", 0.5)])
    found = segment_energy(y, SR, min_s=0.5, max_s=3.0)
    assert len(found) == 2
    assert all(b - a <= 3.0 + 1e-9 for a, b in found)
    assert 3.0 <= found[0][1] <= 3.15  # cut inside the dip, not mid-burst
    assert found[0][0] == pytest.approx(0.5, abs=0.05) and found[-1][1] == pytest.approx(5.5, abs=0.05)


def test_continuous_speech_without_pauses_is_split_into_pieces_no_longer_than_max():
    y, _ = _signal([("burst", 20.0)], noise_db=-60)
    found = segment_energy(y, SR, min_s=0.5, max_s=6.0)
    assert all(0.5 <= b - a <= 6.0 for a, b in found)
    assert sum(b - a for a, b in found) == pytest.approx(20.0, abs=0.1)


def test_silence_and_pure_noise_yield_no_utterances():
    assert segment_energy(np.zeros(SR * 3, dtype=np.float32), SR) == []
    rng = np.random.default_rng(1)
    assert segment_energy(rng.normal(0, 10 ** (-75 / 20), SR * 3).astype(np.float32), SR) == []
    assert segment_energy(np.zeros(10, dtype=np.float32), SR) == []


def test_min_must_be_below_max():
    with pytest.raises(ValueError, match="min_s"):
        segment_energy(np.zeros(SR, dtype=np.float32), SR, min_s=3.0, max_s=2.0)


def test_streamed_levels_equal_whole_signal_levels_for_any_block_sizes():
    y, _ = _signal(LAYOUT)
    whole = frame_levels_db(y, SR)
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.integers(0, y.size, 17))
    blocks = np.split(y, cuts)
    np.testing.assert_allclose(stream_frame_levels_db(blocks, SR), whole, atol=1e-4)


def test_segment_file_streams_a_long_recording_in_small_blocks(tmp_path):
    # 60 s file at 22.05 kHz read in 2 s blocks at 16 kHz: same spans as in memory.
    layout = [("pause", 1.0)]
    for k in range(12):
        layout += [("burst", 1.0 + 0.25 * (k % 4)), ("pause", 0.9 + 0.1 * (k % 3))]
    y, truth = _signal(layout, sr=22_050, seed=5)
    path = tmp_path / "session.wav"
    sf.write(path, y, 22_050, subtype="PCM_16")
    found = segment_file(path.as_uri(), block_s=2.0)
    _assert_spans_close(found, truth, tol=0.07)


def test_segment_file_raises_a_typed_error_on_a_broken_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"this is not audio at all")
    with pytest.raises(AudioDecodeError, match="broken.wav"):
        segment_file(str(bad))


def test_turns_become_utterances_clipped_split_and_filtered():
    turns = pd.DataFrame(
        {
            "start_s": [0.0, 4.0, 4.5, 30.0],
            "end_s": [3.0, 4.3, 21.0, 40.0],
            "participant_id": ["p1", "p2", "p1", "p2"],
            "question": ["q1", "q1", None, "q3"],
        }
    )
    utts = utterances_from_turns("s1", turns, duration_s=35.0, min_s=0.5, max_s=8.0)
    spans = [(u.start_s, u.end_s) for u in utts]
    # 0.3 s turn dropped, 16.5 s turn in 3 equal parts, last turn clipped at 35 s.
    assert spans == [(0.0, 3.0), (4.5, 10.0), (10.0, 15.5), (15.5, 21.0), (30.0, 35.0)]
    assert [u.participant_id for u in utts] == ["p1", "p1", "p1", "p1", "p2"]
    assert utts[1].question is None and utts[-1].question == "q3"
    assert all(u.session_id == "s1" for u in utts)


def test_segment_recording_prefers_turns_and_falls_back_to_vad(tmp_path):
    y, truth = _signal(LAYOUT)
    path = tmp_path / "s2.flac"
    sf.write(path, y, SR)
    turns = [{"start_s": 1.0, "end_s": 2.0, "participant_id": "p9", "question": "why"}]
    with_turns = segment_recording(str(path), "s2", turns)
    assert with_turns == [Utterance("s2", "p9", 1.0, 2.0, "why")]
    vad = segment_recording(str(path), "s2", turns=None)
    _assert_spans_close([(u.start_s, u.end_s) for u in vad], truth)
    assert all(u.participant_id is None and u.session_id == "s2" for u in vad)


def test_utterance_id_depends_on_recording_and_span_in_milliseconds():
    u = Utterance("s", "p", 1.2344, 2.5, None)
    assert u.utterance_id("abc") == utterance_id("abc", 1.234, 2.5)
    assert len(u.utterance_id("abc")) == 32
    assert u.utterance_id("abc") != u.utterance_id("abd")
    assert utterance_id("abc", 1.0, 2.0) != utterance_id("abc", 1.0, 2.001)


@pytest.mark.realdata
def test_concatenated_ravdess_clips_give_one_utterance_inside_each_clip(ravdess_dir):
    from ser_pipeline.audio.decode import load_audio

    files = sorted(ravdess_dir.glob("Actor_*/*.flac"))[::37][:12]
    clips = [load_audio(str(f), SR).samples for f in files]
    bounds, t = [], 0.0
    for clip in clips:
        bounds.append((t, t + len(clip) / SR))
        t += len(clip) / SR
    found = segment_energy(np.concatenate(clips), SR)
    assert len(found) == len(files)
    for (a, b), (lo, hi) in zip(found, bounds):
        assert lo <= a < b <= hi and b - a >= 0.5


@pytest.mark.slow
def test_segment_file_memory_stays_bounded_on_a_long_recording(tmp_path):
    """Ten minutes of audio, streamed in 5 s blocks: the peak of Python/numpy allocations stays
    far below the decoded recording's size, and the spans are those found in memory."""
    import tracemalloc

    layout = [("pause", 1.0)]
    for k in range(300):
        layout += [("burst", 1.0), ("pause", 1.0)]
    y, truth = _signal(layout, seed=7)
    path = tmp_path / "long.wav"
    sf.write(path, y, SR, subtype="PCM_16")
    whole_bytes = y.size * 4  # float32 samples of the whole recording
    del y
    tracemalloc.start()
    try:
        found = segment_file(str(path), sample_rate=SR, block_s=5.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < whole_bytes / 10, f"peak {peak / 1e6:.1f} MB for a {whole_bytes / 1e6:.1f} MB recording"
    _assert_spans_close(found, truth, tol=0.07)
