"""Decoding: every format by content, every source kind, downmix/resample, typed errors, quirks."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from ser_pipeline.audio.decode import iter_audio_blocks, load_audio, probe_audio
from ser_pipeline.errors import AudioDecodeError
from ser_pipeline.storage import write_bytes_atomic

SRC_RATE = 44_100
SR = 22_050
DURATION_S = 1.5


def _stereo_test_signal(rate: int = SRC_RATE, duration_s: float = DURATION_S) -> np.ndarray:
    """Different content per channel, so the downmix is checked and not just a gain: (n, 2)."""
    t = np.arange(int(rate * duration_s)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    right = 0.3 * np.sin(2 * np.pi * 660 * t + 0.3)
    return np.stack([left, right], axis=1).astype(np.float32)


def _encode(x: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _expected_mono(x: np.ndarray, rate: int = SRC_RATE) -> np.ndarray:
    return soxr.resample(x.mean(axis=1), rate, SR, quality="HQ")


# (format, subtype, largest tolerated absolute error against the exact downmix; None: lossy)
FORMATS = [
    ("WAV", "PCM_U8", 2.5 / 2**7),
    ("WAV", "PCM_16", 2.5 / 2**15),
    ("WAV", "PCM_24", 1e-5),
    ("WAV", "PCM_32", 1e-5),
    ("WAV", "FLOAT", 1e-5),
    ("WAV", "DOUBLE", 1e-5),
    ("FLAC", "PCM_16", 2.5 / 2**15),
    ("FLAC", "PCM_24", 1e-5),
    ("OGG", "VORBIS", None),
    ("MP3", "MPEG_LAYER_III", None),
    ("AIFF", "PCM_16", 2.5 / 2**15),
    ("AIFF", "FLOAT", 1e-5),
]


@pytest.mark.parametrize("fmt, subtype, tolerance", FORMATS, ids=[f"{f}-{s}" for f, s, _ in FORMATS])
def test_decodes_by_content_downmixes_and_resamples(tmp_path, fmt, subtype, tolerance):
    x = _stereo_test_signal()
    path = tmp_path / "recording.wav"  # every format named .wav: the content decides
    path.write_bytes(_encode(x, SRC_RATE, fmt, subtype))

    audio = load_audio(str(path))
    assert (audio.info.format, audio.info.subtype) == (fmt, subtype)
    assert (audio.info.sample_rate, audio.info.channels, audio.info.frames) == (SRC_RATE, 2, len(x))
    assert audio.info.duration_s == pytest.approx(DURATION_S)
    assert audio.info.source == str(path)
    assert audio.sample_rate == SR and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert len(audio.samples) == pytest.approx(len(x) * SR / SRC_RATE, abs=1)
    assert audio.duration_s == pytest.approx(DURATION_S, abs=1 / SR)

    expected = _expected_mono(x)
    n = min(len(expected), len(audio.samples))
    if tolerance is None:  # lossy codecs: same waveform, not the same samples
        inner = slice(2000, n - 2000)
        assert np.corrcoef(audio.samples[inner], expected[inner])[0, 1] > 0.999
    else:
        np.testing.assert_allclose(audio.samples[:n], expected[:n], atol=tolerance)
    assert probe_audio(str(path)) == audio.info


def test_sources_path_url_and_bytes_agree(tmp_path):
    x = _stereo_test_signal()
    data = _encode(x, SRC_RATE, "FLAC", "PCM_16")
    path = tmp_path / "clip.flac"
    path.write_bytes(data)
    by_str = load_audio(str(path))
    for source in (path, path.as_uri(), data):
        other = load_audio(source)
        np.testing.assert_array_equal(other.samples, by_str.samples)
        assert other.info.frames == by_str.info.frames
    assert load_audio(data).info.source == "<bytes>"


def test_same_rate_mono_is_passed_through(tmp_path):
    y = (0.25 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)).astype(np.float32)
    path = tmp_path / "mono.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    audio = load_audio(str(path))
    np.testing.assert_array_equal(audio.samples, y)
    assert audio.info.channels == 1


def test_offset_and_duration_read_a_part(tmp_path):
    x = _stereo_test_signal(duration_s=3.0)
    path = tmp_path / "long.wav"
    sf.write(path, x, SRC_RATE, subtype="PCM_24")
    part = load_audio(str(path), offset_s=1.0, duration_s=0.5)
    assert len(part.samples) == pytest.approx(0.5 * SR, abs=1)
    expected = soxr.resample(x[SRC_RATE : SRC_RATE + SRC_RATE // 2].mean(axis=1), SRC_RATE, SR, quality="HQ")
    np.testing.assert_allclose(part.samples[50:-50], expected[50:-50], atol=1e-5)
    with pytest.raises(AudioDecodeError, match="no audio at offset"):
        load_audio(str(path), offset_s=10.0)


def test_nonfinite_samples_are_bridged_from_their_neighbours_and_counted(tmp_path):
    y = np.linspace(-0.5, 0.5, 1000).astype(np.float32)  # a ramp: the bridge must land on it
    y[[10, 20, 21, 30]] = [np.nan, np.inf, -np.inf, np.nan]
    path = tmp_path / "nan.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    audio = load_audio(str(path))
    assert audio.nonfinite_repaired == 4 and np.isfinite(audio.samples).all()
    np.testing.assert_allclose(audio.samples, np.linspace(-0.5, 0.5, 1000), atol=1e-6)  # no clicks to zero


@pytest.mark.s3
def test_loads_from_s3(s3_bucket, tmp_path):
    x = _stereo_test_signal()
    data = _encode(x, SRC_RATE, "AIFF", "PCM_16")
    url = f"{s3_bucket}/uploads/survey 1/clip.wav"  # AIFF named .wav, a space in the key
    write_bytes_atomic(url, data)
    local = tmp_path / "clip.wav"
    local.write_bytes(data)
    remote = load_audio(url)
    np.testing.assert_array_equal(remote.samples, load_audio(str(local)).samples)
    assert remote.info.source == url and remote.info.format == "AIFF"
    assert probe_audio(url).frames == len(x)
    blocks = list(iter_audio_blocks(url, SR, block_s=0.4))
    assert sum(map(len, blocks)) == pytest.approx(len(remote.samples), abs=2)
    with pytest.raises(AudioDecodeError, match="file not found") as err:
        load_audio(f"{s3_bucket}/uploads/missing.wav")
    assert err.value.source.endswith("missing.wav")
    write_bytes_atomic(f"{s3_bucket}/uploads/empty.wav", b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        load_audio(f"{s3_bucket}/uploads/empty.wav")


# --- bad input -------------------------------------------------------------------------------


def _wav16() -> bytes:
    return _encode(_stereo_test_signal(), SRC_RATE, "WAV", "PCM_16")


def _zero_channel_wav() -> bytes:
    data = bytearray(_wav16())
    data[22:24] = struct.pack("<H", 0)  # fmt chunk: number of channels
    return bytes(data)


def _corrupt_middle(data: bytes, n: int = 2000) -> bytes:
    out = bytearray(data)
    mid = len(out) // 3
    out[mid : mid + n] = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(out)


def _flac() -> bytes:
    return _encode(_stereo_test_signal(), SRC_RATE, "FLAC", "PCM_16")


def _mp3() -> bytes:
    return _encode(_stereo_test_signal(), SRC_RATE, "MP3", "MPEG_LAYER_III")


def _ogg() -> bytes:
    return _encode(_stereo_test_signal(), SRC_RATE, "OGG", "VORBIS")


def _aiff() -> bytes:
    return _encode(_stereo_test_signal(), SRC_RATE, "AIFF", "PCM_16")


BAD_INPUTS = {
    "empty": (lambda: b"", "empty file"),
    "text": (lambda: b"session_id,start_s\nS1,0.0\n" * 40, "not a recognised audio format"),
    "random-bytes": (lambda: np.random.default_rng(2).integers(0, 256, 8192, dtype=np.uint8).tobytes(), "not a recognised"),
    "wav-header-cut": (lambda: _wav16()[:30], "truncated WAV header"),
    "wav-header-only": (lambda: _wav16()[:44], "truncated WAV data"),
    "wav-data-cut": (lambda: _wav16()[: len(_wav16()) // 2], "truncated WAV data"),
    "wav-zero-channels": (_zero_channel_wav, "corrupt or truncated"),
    "aiff-header-cut": (lambda: _aiff()[:8], "truncated header"),
    "aiff-data-cut": (lambda: _aiff()[: len(_aiff()) // 2], "truncated AIFF data"),
    "flac-header-cut": (lambda: _flac()[:30], "corrupt or truncated"),
    "flac-data-cut": (lambda: _flac()[: len(_flac()) // 2], "flac decoder lost sync|truncated audio"),
    "flac-corrupt": (lambda: _corrupt_middle(_flac()), "corrupt audio data"),
    "ogg-data-cut": (lambda: _ogg()[: len(_ogg()) // 2], "truncated Ogg stream"),
    "ogg-corrupt": (lambda: _corrupt_middle(_ogg()), "corrupt"),
    "mp3-data-cut": (lambda: _mp3()[: len(_mp3()) // 2], "truncated audio"),
    "mp3-corrupt": (lambda: _corrupt_middle(_mp3()), "corrupt"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_typed_error_naming_file_and_cause(tmp_path, case):
    make, cause = BAD_INPUTS[case]
    path = tmp_path / f"{case}.wav"
    path.write_bytes(make())
    with pytest.raises(AudioDecodeError, match=cause) as err:
        load_audio(str(path))
    assert err.value.source == str(path)
    assert str(path) in str(err.value) and err.value.reason
    # the same input read block by block fails the same way, never yielding a short recording
    with pytest.raises(AudioDecodeError):
        for _ in iter_audio_blocks(str(path), SR, block_s=0.25):
            pass


@pytest.mark.parametrize("make, kind", [(_wav16, "WAV"), (_aiff, "AIFF")])
def test_a_cut_off_wav_or_aiff_gives_what_it_holds_when_allowed(tmp_path, make, kind):
    whole = make()
    full = load_audio(whole, SR)
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) * 6 // 10])
    cut = load_audio(str(path), SR, allow_truncated=True)
    assert cut.info.defect.kind == "truncated" and f"truncated {kind} data" in cut.info.defect.message
    assert abs(cut.info.declared_s - full.duration_s) < 0.005
    assert 0.5 * full.duration_s < cut.duration_s < 0.6 * full.duration_s
    # what is there is the recording's beginning, sample for sample (away from the resampler's edge)
    n = len(cut.samples) - 200
    np.testing.assert_allclose(cut.samples[:n], full.samples[:n], atol=1e-4)
    assert probe_audio(str(path), allow_truncated=True).frames == cut.info.frames
    streamed = np.concatenate(list(iter_audio_blocks(str(path), SR, block_s=0.25, allow_truncated=True)))
    assert abs(len(streamed) - len(cut.samples)) <= 2
    part = load_audio(str(path), SR, offset_s=0.1, duration_s=0.2, allow_truncated=True)
    assert part.info.defect == cut.info.defect and len(part.samples) == round(0.2 * SR)


@pytest.mark.parametrize("make, kind", [(_wav16, "WAV"), (_aiff, "AIFF")])
def test_bytes_after_the_audio_are_reported_and_the_audio_decodes_whole(tmp_path, make, kind):
    whole = make()
    junk = np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path = tmp_path / "junk.wav"
    path.write_bytes(whole + junk)
    loaded = load_audio(str(path), SR)
    assert loaded.info.defect.kind == "trailing_bytes"
    assert loaded.info.defect.found_bytes - loaded.info.defect.declared_bytes == len(junk)
    assert f"{len(junk)} bytes after the end of the {kind} data" in loaded.info.defect.message
    np.testing.assert_array_equal(loaded.samples, load_audio(whole, SR).samples)
    assert load_audio(whole, SR).info.defect is None


def test_missing_file_raises(tmp_path):
    with pytest.raises(AudioDecodeError, match="file not found") as err:
        load_audio(str(tmp_path / "nope.wav"))
    assert err.value.source == str(tmp_path / "nope.wav")


# --- the real malformed files ----------------------------------------------------------------


def _true_header_length(path: Path) -> tuple[str, int, int]:
    """(container, sample rate, frames) straight from the header fields, without libsndfile."""
    data = path.read_bytes()
    if data[:4] == b"RIFF":
        pos, rate, block_align, frames = 12, None, None, None
        while pos + 8 <= len(data):
            cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if cid == b"fmt ":
                _tag, _channels, rate, _bps, block_align = struct.unpack("<HHIIH", data[pos + 8 : pos + 22])
            elif cid == b"data":
                frames = size // block_align
            pos += 8 + size + (size & 1)
        return "WAV", rate, frames
    if data[:4] == b"FORM":
        pos = 12
        while pos + 8 <= len(data):
            cid, size = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
            if cid == b"COMM":
                _channels, frames, _bits = struct.unpack(">hIh", data[pos + 8 : pos + 16])
                ext = data[pos + 16 : pos + 26]  # 80-bit IEEE extended sample rate
                exponent = ((ext[0] & 0x7F) << 8 | ext[1]) - 16383
                rate = int(int.from_bytes(ext[2:10], "big") * 2.0 ** (exponent - 63))
                return "AIFF", rate, frames
            pos += 8 + size + (size & 1)
    raise AssertionError(f"{path}: neither RIFF nor FORM")


@pytest.mark.realdata
def test_quirk_files_load_with_true_durations(quirks_dir):
    paths = sorted(quirks_dir.glob("*.wav"))
    assert len(paths) == 5
    containers = set()
    for path in paths:
        container, rate, frames = _true_header_length(path)
        containers.add(container)
        audio = load_audio(str(path))
        assert audio.info.format == container  # AIFF content named .wav is read as AIFF
        assert (audio.info.sample_rate, audio.info.frames) == (rate, frames)
        assert audio.info.duration_s == pytest.approx(frames / rate)
        assert len(audio.samples) == pytest.approx(frames * SR / rate, abs=1)
        # float WAVs may exceed full scale (two quirks peak above 2.0); values are kept, not clipped
        assert audio.nonfinite_repaired == 0 and np.abs(audio.samples).max() > 0.01
    assert containers == {"WAV", "AIFF"}


# --- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [SRC_RATE, SR])
def test_blocks_equal_whole_decode_in_bounded_blocks(tmp_path, rate):
    rng = np.random.default_rng(5)
    seconds = 40.0
    t = np.arange(int(rate * seconds)) / rate
    chirp = np.sin(2 * np.pi * (100 + 40 * t) * t)
    x = np.stack([0.3 * chirp, 0.2 * rng.standard_normal(len(t))], axis=1).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, x, rate, subtype="PCM_24")

    block_s = 3.7
    blocks = list(iter_audio_blocks(str(path), SR, block_s=block_s))
    assert len(blocks) >= int(seconds / block_s)
    assert max(map(len, blocks)) <= int(block_s * SR) + 2048  # the streaming resampler's buffer
    streamed = np.concatenate(blocks)
    whole = load_audio(str(path)).samples
    assert abs(len(streamed) - len(whole)) <= 2
    n = min(len(streamed), len(whole))
    edge = 64  # the one-shot and streaming resamplers differ only at the very ends
    np.testing.assert_allclose(streamed[edge : n - edge], whole[edge : n - edge], atol=2e-4)
