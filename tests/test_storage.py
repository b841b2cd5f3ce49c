"""Object-store access: the same calls on file:// and s3://, and s3:// surviving faults."""

from __future__ import annotations

import pytest

from ser_pipeline import storage
from ser_pipeline.settings import get_settings
from tests.support.s3 import reset_moto, use_endpoint


def test_local_round_trip_and_listing(tmp_path):
    root = tmp_path.as_uri()
    storage.write_bytes_atomic(storage.join(root, "a", "x.wav"), b"RIFF1")
    storage.write_bytes_atomic(storage.join(root, "b", "y.FLAC"), b"fLaC2")
    storage.write_bytes_atomic(storage.join(root, "notes.txt"), b"hello")
    audio = storage.list_files(root, storage.AUDIO_EXTENSIONS)
    assert [u.rsplit("/", 2)[-2:] for u in audio] == [["a", "x.wav"], ["b", "y.FLAC"]]
    assert storage.read_bytes(audio[0]) == b"RIFF1"
    assert not any(".tmp-" in p.name for p in tmp_path.rglob("*"))


def test_content_hash_is_sha256():
    assert storage.content_hash(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.fixture(scope="module")
def s3_behind_proxy():
    from tests.support.faultproxy import moto_behind_proxy

    with moto_behind_proxy() as servers:
        yield servers


@pytest.fixture
def faulty_s3(s3_behind_proxy, monkeypatch):
    endpoint, proxy, proxy_url = s3_behind_proxy
    reset_moto(endpoint)
    proxy.clear()
    use_endpoint(monkeypatch, proxy_url)
    monkeypatch.setenv("SER_S3_TIMEOUT_S", "2")
    fs, _ = storage.filesystem("s3://bucket")
    fs.mkdir("bucket")
    for i in range(3):
        fs.pipe(f"bucket/archive/s{i}.wav", bytes([i]) * 1000)
    return proxy


@pytest.mark.s3
@pytest.mark.parametrize("action", ["reset", "500", "503", "truncate"])
def test_reads_survive_faults(faulty_s3, action):
    faulty_s3.add(action, method="GET", path_contains="s1.wav", count=2)
    assert storage.read_bytes("s3://bucket/archive/s1.wav") == bytes([1]) * 1000
    assert [entry[2] for entry in faulty_s3.log if "s1.wav" in entry[1]].count(action) == 2


@pytest.mark.s3
@pytest.mark.parametrize("action", ["reset", "500", "503"])
def test_listing_survives_faults(faulty_s3, action):
    faulty_s3.add(action, method="GET", path_contains="list-type", count=2)
    files = storage.list_files("s3://bucket/archive", storage.AUDIO_EXTENSIONS)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["s0.wav", "s1.wav", "s2.wav"]


@pytest.mark.s3
def test_slow_answer_is_retried_after_timeout(faulty_s3):
    faulty_s3.add("slow", method="GET", path_contains="s2.wav", count=1, delay_s=3.0)
    assert storage.read_bytes("s3://bucket/archive/s2.wav") == bytes([2]) * 1000


@pytest.mark.s3
def test_persistent_failure_is_a_clear_error(faulty_s3, monkeypatch):
    monkeypatch.setenv("SER_S3_MAX_ATTEMPTS", "2")
    settings = get_settings()
    faulty_s3.add("503", method="GET", path_contains="s0.wav", count=100)
    with pytest.raises(OSError) as info:
        storage.read_bytes("s3://bucket/archive/s0.wav")
    assert "testing-secret-key-do-not-log" not in str(info.value)
