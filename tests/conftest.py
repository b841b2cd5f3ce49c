"""Shared fixtures: the real corpora beside the project, and temporary stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("SER_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real audio not available: {path} does not exist (set SER_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    return _require(SHARED_DATA / "ravdess-dev")


@pytest.fixture(scope="session")
def tess_dir() -> Path:
    return _require(SHARED_DATA / "tess-subset")


@pytest.fixture(scope="session")
def quirks_dir() -> Path:
    return _require(SHARED_DATA / "quirks")


@pytest.fixture(scope="session")
def encoder_home(tmp_path_factory) -> Path:
    """One SER_HOME for the session: the bundled encoder is assembled there once."""
    return tmp_path_factory.mktemp("ser-home")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch, encoder_home):
    """Point every default store at the test's own folder so no test touches ./demo-data (the
    CLI and the flows read these variables, as edges do; the library gets :func:`settings`)."""
    monkeypatch.setenv("SER_HOME", str(encoder_home))
    monkeypatch.setenv("SER_ARCHIVE_URL", (tmp_path / "archive").as_uri())
    monkeypatch.setenv("SER_FEATURE_STORE_URL", (tmp_path / "features").as_uri())
    monkeypatch.setenv("SER_REGISTRY_URL", (tmp_path / "registry").as_uri())
    monkeypatch.setenv("SER_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    # Transcripts cost a Whisper decode per utterance and most tests label generated sounds
    # without words: they are written in the tests that are about them (test_transcripts*.py,
    # which turn this back on), so the suite stays within its time.
    monkeypatch.setenv("SER_TRANSCRIBE", "false")
    yield


@pytest.fixture
def settings(_isolated_settings):
    """The Settings a test hands the library, as an edge builds them: from the environment
    the test's fixtures set up before this one (list it after them)."""
    from ser_pipeline.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto S3 server on loopback for the whole test session; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch) -> str:
    """A fresh bucket on the moto server, with SER_S3_ENDPOINT_URL and dummy AWS credentials set;
    returns its ``s3://`` URL."""
    import uuid

    import boto3

    monkeypatch.setenv("SER_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # for callers holding no Settings (storage's None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


@pytest.fixture(scope="session")
def tiny_champion(tmp_path_factory):
    """A registry holding a small really-trained champion, shared by the whole session:
    ``(registry_url, version)``. Training costs seconds, so every test that only needs *a*
    model labelling audio uses this one."""
    from support.tiny_model import shared_champion

    return shared_champion(tmp_path_factory)


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session, started only for tests that ask for it
    (telemetry off: importing ``flows`` sets that, as for any caller)."""
    import flows  # noqa: F401
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
