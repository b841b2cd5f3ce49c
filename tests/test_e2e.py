"""End to end: S3 archive (moto) -> Prefect server + process worker -> deployment run -> DuckDB.

Everything runs for real on loopback: moto's S3 server holds a generated archive, ``prefect
server start`` (SQLite in a temporary PREFECT_HOME) and ``prefect worker start`` run in the
background, ``prefect deploy`` registers ``nightly-labeling`` from prefect.yaml with the
work pool from infra/, and ``prefect deployment run --watch`` runs it. Every process started
here is stopped at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from support.tiny_model import shared_champion

pytestmark = [pytest.mark.prefect, pytest.mark.s3, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(api_url: str, process: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"prefect server not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop a process we started (and its children: it leads its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def module_bucket(moto_endpoint):
    """A fresh bucket on the moto server for this module's tests, with SER_S3_ENDPOINT_URL and
    dummy AWS credentials set while they run; its ``s3://`` URL."""
    import uuid

    import boto3

    from ser_pipeline.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"SER_S3_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(name, value)
        bucket = f"test-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield f"s3://{bucket}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, module_bucket):
    """A Prefect server, the cpu-pool work pool, the nightly deployment and a worker whose flow
    runs read the archive in ``module_bucket``, started once for this module's tests. Yields
    (env, archive_url, warehouse_path, prefect, worker_log); a test that must not see another's
    rows passes its own ``archive_url`` and ``warehouse`` parameters."""
    registry_url, _ = shared_champion(tmp_path_factory)
    tmp_path = tmp_path_factory.mktemp("stack")

    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    archive_url = f"{module_bucket}/archive"
    warehouse = tmp_path / "warehouse.duckdb"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "SER_PROJECT_DIR": str(ROOT),
        "SER_ARCHIVE_URL": archive_url,
        "SER_WAREHOUSE_PATH": str(warehouse),
        "SER_REGISTRY_URL": registry_url,
        "SER_FEATURE_STORE_URL": (tmp_path / "features").as_uri(),
        "SER_WORKERS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    started: list[subprocess.Popen] = []
    try:
        server_log = tmp_path / "server.log"
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=server_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        started.append(server)
        _wait_healthy(api_url, server, server_log)

        def prefect(*args: str) -> str:
            done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
            return done.stdout

        prefect("work-pool", "create", "cpu-pool", "--type", "process",
                "--base-job-template", str(ROOT / "infra" / "work-pools" / "cpu-process.json"))
        prefect("concurrency-limit", "create", "warehouse-writer", "1")
        prefect("--no-prompt", "deploy", "--name", "nightly-labeling")

        worker_log = tmp_path / "worker.log"
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "cpu-pool", "--type", "process", "--limit", "1"],
                                  env=env, cwd=ROOT, stdout=worker_log.open("w"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        started.append(worker)
        yield env, archive_url, warehouse, prefect, worker_log
    finally:
        for process in reversed(started):
            _stop(process)


def _run_nightly(prefect, worker_log: Path) -> None:
    try:
        out = prefect("deployment", "run", "label-new-audio/nightly-labeling", "--watch", "--watch-timeout", "540")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log:\n{worker_log.read_text()[-4000:]}") from None
    assert "Completed" in out, out


def _rows(warehouse: Path, sql: str):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_deployed_nightly_run_labels_new_audio_from_s3_and_only_new_audio_again(stack):
    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import get_settings
    from ser_pipeline.labels import EMOTIONS

    env, archive_url, warehouse, prefect, worker_log = stack
    params = dict(sessions_per_survey=2, participants_per_session=3, utterances_per_session=4, sidecar="csv", seed=5)
    first = synth.generate_archive(archive_url, n_surveys=1, **params, settings=get_settings())

    _run_nightly(prefect, worker_log)
    n = len(first)
    assert _rows(warehouse, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions") == [(n, n)]
    assert _rows(warehouse, "SELECT count(*) FROM utterances") == [(n,)]
    assert {r[0] for r in _rows(warehouse, "SELECT DISTINCT label FROM predictions")} <= set(EMOTIONS)
    assert _rows(warehouse, "SELECT status, n_predictions FROM ingest_runs") == [("completed", n)]
    before = set(_rows(warehouse, "SELECT utterance_id, label, predicted_at FROM predictions"))

    # New audio arrives: the same generator with one more survey rewrites SV01 byte for byte
    # (same content hashes) and adds SV02.
    both = synth.generate_archive(archive_url, n_surveys=2, **params, settings=get_settings())
    added = (both.survey_id == "SV02").sum()
    assert added > 0
    _run_nightly(prefect, worker_log)
    assert _rows(warehouse, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions") == [(n + added, n + added)]
    assert before <= set(_rows(warehouse, "SELECT utterance_id, label, predicted_at FROM predictions"))
    assert _rows(warehouse, "SELECT s.survey_id, count(*) FROM utterances u JOIN sessions s USING (session_id) "
                            "GROUP BY 1 ORDER BY 1") == [("SV01", n), ("SV02", added)]
    assert [r[0] for r in _rows(warehouse, "SELECT n_predictions FROM ingest_runs ORDER BY started_at")] == [n, added]


def test_deployed_nightly_run_without_its_model_ends_failed_with_our_message(stack):
    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import get_settings

    env, archive_url, _, prefect, worker_log = stack
    archive_url = f"{archive_url}-failing"  # this test's own archive and warehouse
    warehouse = Path(env["SER_WAREHOUSE_PATH"]).with_name("failing.duckdb")
    synth.generate_archive(archive_url, n_surveys=1, sessions_per_survey=1, participants_per_session=2,
                           utterances_per_session=3, sidecar="csv", seed=6, settings=get_settings())
    done = subprocess.run([PREFECT, "deployment", "run", "label-new-audio/nightly-labeling",
                           "--param", "model=v-no-such-version", "--param", f"archive_url={archive_url}",
                           "--param", f"warehouse={warehouse}", "--watch", "--watch-timeout", "540"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Failed" in out, f"{out}\nworker log:\n{worker_log.read_text()[-4000:]}"
    flow_run_id = _rows(warehouse, "SELECT flow_run_id FROM ingest_runs")[0][0]
    with urllib.request.urlopen(f"{env['PREFECT_API_URL']}/flow_runs/{flow_run_id}", timeout=30) as response:
        state = json.load(response)["state"]
    assert state["type"] == "FAILED"
    assert "NightlyRunFailed" in state["message"] and "ModelNotFound: no model version 'v-no-such-version'" in state["message"]
    assert _rows(warehouse, "SELECT status, n_predictions FROM ingest_runs") == [("failed", 0)]
