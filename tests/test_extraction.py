"""Parallel featurisation into the store, and ``ser features`` on a generated tree."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.features.extraction import featurise
from ser_pipeline.features.store import read_features
from ser_pipeline.features.spec import FeatureSpec
from ser_pipeline.features.frames import extract_features

SPEC = FeatureSpec()


@pytest.fixture
def audio_tree(tmp_path):
    """Tones of 1-9 s at 16 kHz (resampled on load), a hidden folder, and a corrupt file."""
    root = tmp_path / "incoming"
    (root / "day1").mkdir(parents=True)
    (root / "_ignored").mkdir()
    rate = 16_000
    for i, seconds in enumerate([1.0, 2.5, 4.0, 9.0]):
        t = np.arange(int(rate * seconds)) / rate
        sf.write(root / "day1" / f"tone{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t), rate)
    sf.write(root / "_ignored" / "skip.wav", np.zeros(rate), rate)
    (root / "day1" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    return root


def test_cli_stores_every_good_file_reports_the_bad_one_and_reruns_cleanly(audio_tree, tmp_path):
    store = (tmp_path / "store").as_uri()
    runner = CliRunner()
    first = runner.invoke(app, ["features", str(audio_tree), "--out", store, "--corpus", "plain", "--workers", "1", "--json"])
    assert first.exit_code == 1, first.output
    summary = json.loads(first.stdout)
    assert summary["files_seen"] == 5 and summary["files_written"] == 4 and summary["failed"] == 1
    assert summary["failures"][0]["path"].endswith("corrupt.wav") and summary["failures"][0]["reason"]
    frame, arrays = read_features(store, SPEC, families=("mfcc", "mel"))
    # 1, 2.5 and 4 s clips fit one window (4 s = 88 064 samples is 0.3 ms too long: two); 9 s needs four.
    assert frame.groupby("utterance_id")["window"].count().to_dict() == {
        "plain:day1/tone0": 1, "plain:day1/tone1": 1, "plain:day1/tone2": 2, "plain:day1/tone3": 4}
    assert summary["rows_written"] == len(frame) == len(arrays["mel"]) == 8
    assert not frame["path"].str.contains("_ignored").any()

    # The stored features are what extract_features gives for the same windows.
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.features.spec import clip_windows

    windows = clip_windows(load_audio(audio_tree / "day1" / "tone3.wav").samples, SPEC)
    rows = frame.index[frame["utterance_id"] == "plain:day1/tone3"]
    np.testing.assert_allclose(arrays["mfcc"][rows], extract_features(windows, SPEC)["mfcc"], atol=1e-4)

    again = runner.invoke(app, ["features", str(audio_tree), "--out", store, "--corpus", "plain", "--workers", "1", "--json"])
    summary = json.loads(again.stdout)
    assert summary["skipped"] == 4 and summary["rows_written"] == 0 and summary["parquet_files"] == []
    assert len(list((tmp_path / "store").rglob("*.parquet"))) == 1


def test_cli_exit_codes_and_help(audio_tree, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["features", "--help"]).exit_code == 0
    ok_tree = tmp_path / "ok"
    shutil.copytree(audio_tree / "day1", ok_tree)
    (ok_tree / "corrupt.wav").unlink()
    done = runner.invoke(app, ["features", str(ok_tree), "--out", str(tmp_path / "s"), "--corpus", "plain", "--workers", "1"])
    assert done.exit_code == 0 and "4 stored" in done.stdout
    # No corpus naming convention matches: 'auto' falls back to plain audio.
    auto = runner.invoke(app, ["features", str(ok_tree), "--out", str(tmp_path / "s"), "--workers", "1"])
    assert auto.exit_code == 0 and "read as plain" in auto.stdout and "4 already stored" in auto.stdout
    assert runner.invoke(app, ["features", str(tmp_path / "nope"), "--corpus", "plain"]).exit_code == 2
    assert runner.invoke(app, ["features", str(ok_tree), "--corpus", "bogus"]).exit_code == 2


@pytest.mark.slow
def test_parallel_processes_store_the_same_as_one(audio_tree, tmp_path, settings):
    urls = sorted(p.as_uri() for p in (audio_tree / "day1").glob("*.wav"))
    serial = featurise(urls, (tmp_path / "a").as_uri(), SPEC, workers=1, progress=False, chunk_size=1, settings=settings)
    parallel = featurise(urls, (tmp_path / "b").as_uri(), SPEC, workers=2, progress=False, chunk_size=1, settings=settings)
    assert (serial.files_written, serial.rows_written, len(serial.failures)) == (4, 8, 1)
    assert (parallel.files_written, parallel.rows_written, len(parallel.failures)) == (4, 8, 1)
    a, fa = read_features((tmp_path / "a").as_uri(), SPEC, families=("contrast",))
    b, fb = read_features((tmp_path / "b").as_uri(), SPEC, families=("contrast",))
    assert a["utterance_id"].tolist() == b["utterance_id"].tolist()
    np.testing.assert_array_equal(fa["contrast"], fb["contrast"])


@pytest.mark.realdata
def test_real_quirk_files_all_featurise(quirks_dir, tmp_path, settings):
    """Float WAVs, 96 kHz, AIFF named .wav: every real-world quirk decodes and is stored."""
    urls = sorted(p.as_uri() for p in quirks_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    summary = featurise(urls, tmp_path.as_uri(), SPEC, workers=1, progress=False, settings=settings)
    assert summary.failures == [] and summary.files_written == len(urls) == 5
    frame, arrays = read_features(tmp_path.as_uri(), SPEC)
    assert frame["utterance_id"].nunique() == 5 and np.isfinite(arrays["mfcc"]).all()


@pytest.mark.s3
def test_cli_reads_and_writes_s3(audio_tree, monkeypatch):
    from ser_pipeline import storage
    from tests.support.s3 import moto_server, use_endpoint

    with moto_server() as endpoint:
        use_endpoint(monkeypatch, endpoint)
        fs, _ = storage.filesystem("s3://bucket")
        fs.mkdir("bucket")
        for path in (audio_tree / "day1").glob("tone[01].wav"):
            fs.pipe(f"bucket/in/{path.name}", path.read_bytes())
        result = CliRunner().invoke(app, ["features", "s3://bucket/in", "--out", "s3://bucket/store",
                                          "--corpus", "plain", "--workers", "1", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["files_written"] == 2
        frame, _ = read_features("s3://bucket/store", SPEC)
        assert sorted(frame["utterance_id"]) == ["plain:tone0", "plain:tone1"]
        assert frame["path"].str.startswith("s3://bucket/in/").all()


def test_cli_auto_detects_a_corpus_and_keeps_its_labels(tmp_path):
    pytest.importorskip("ser_pipeline.training.corpora")
    root = tmp_path / "ravdess"
    rate = 24_000
    for actor, emotion in [(1, 5), (2, 3), (3, 4)]:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        t = np.arange(int(rate * 3.0)) / rate
        sf.write(folder / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.flac", 0.2 * np.sin(2 * np.pi * 300 * actor * t), rate)
    (root / "Actor_03" / "notes-not-a-clip.wav").write_bytes((root / "Actor_01" / "03-01-05-01-01-01-01.flac").read_bytes())
    store = (tmp_path / "store").as_uri()
    result = CliRunner().invoke(app, ["features", str(root), "--out", store, "--workers", "1", "--json"])
    summary = json.loads(result.stdout)
    assert summary["corpus"] == "ravdess" and summary["files_written"] == 3
    # The file whose name breaks the convention is reported, not silently dropped or mislabelled.
    assert result.exit_code == 1 and [f["path"].endswith("notes-not-a-clip.wav") for f in summary["failures"]] == [True]
    frame, _ = read_features(store, SPEC, sources=["ravdess"])
    assert sorted(zip(frame["speaker"], frame["emotion"])) == [("ravdess:01", "angry"), ("ravdess:02", "happy"), ("ravdess:03", "sad")]
    assert (frame["group"] == frame["speaker"]).all() and set(frame["gender"]) == {"male", "female"}
