"""The nightly flow called from Python the ways people call it, each in a real Python process:
a script without an ``if __name__ == "__main__":`` guard, ``python -c``, standard input. Each
labels a generated archive into a real DuckDB file, on the default runner (a Dask cluster of
threads), and prints no INFO line. A cluster that cannot start fails the run at once with our
error, and its process exits."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
INFO_LINE = re.compile(r"\bINFO\b|\bI tensorflow/")  # Prefect's and Dask's format, TensorFlow's C++ lines
# Set by importing `flows` in this test process; a caller's process must set its own.
LOGGING_DEFAULTS = ("PREFECT_LOGGING_LEVEL", "DASK_LOGGING__DISTRIBUTED", "TF_CPP_MIN_LOG_LEVEL")


@pytest.fixture(scope="module")
def tiny_champion(tmp_path_factory):
    """A functionals champion: these tests are about how the flow is called, and it labels the
    archive in a fraction of the encoder's time in each caller's process."""
    from support.tiny_model import shared_champion

    return shared_champion(tmp_path_factory, input_kind="functionals")


@pytest.fixture
def archive(tmp_path):
    """A generated archive under ``tmp_path``: its URL and how many utterances it holds."""
    from ser_pipeline import synthetic as synth

    url = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(url, n_surveys=1, sessions_per_survey=2, participants_per_session=3,
                                   utterances_per_session=4, sidecar="mixed", seed=2)
    return url, len(truth)


def caller_env(tmp_path: Path, tiny_champion, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a caller's process: this test's stores (``SER_*``), the champion's
    registry, the project importable; Prefect on ``api_url``, or, when None, an ephemeral
    server of the process's own (as a user's script gets)."""
    env = {k: v for k, v in os.environ.items() if k not in LOGGING_DEFAULTS and k != "PREFECT_API_URL"}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "SER_REGISTRY_URL": tiny_champion[0],
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # a busy 2-core machine
        **extra,
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@pytest.fixture
def harness_api_url(prefect_harness) -> str:
    """The session's Prefect test server, for callers whose test is not about the ephemeral one."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def run_caller(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], input=stdin, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def label_call(archive_url: str, warehouse: Path) -> str:
    return f"label_new_audio(archive_url={archive_url!r}, warehouse={str(warehouse)!r})"


def count_rows(warehouse: Path) -> str:
    """Code printing the number of rows in the warehouse's predictions table."""
    return (f"con = duckdb.connect({str(warehouse)!r}, read_only=True); "
            f"print('predictions:', con.execute('SELECT count(*) FROM predictions').fetchone()[0]); con.close()")


def printed_counts(stdout: str) -> list[int]:
    return [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("predictions:")]


def assert_quiet(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr[-4000:]
    info = [line for line in (done.stdout + done.stderr).splitlines() if INFO_LINE.search(line)]
    assert not info, "\n".join(info[:10])


def test_a_script_without_a_main_guard_labels_the_archive_then_finds_nothing_new(tmp_path, archive, tiny_champion):
    """The script of issue #21, run twice in one process, with Prefect's ephemeral server."""
    url, n_utterances = archive
    warehouse = tmp_path / "warehouse.duckdb"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""\
        import duckdb
        from flows.nightly import label_new_audio
        {label_call(url, warehouse)}
        {count_rows(warehouse)}
        {label_call(url, warehouse)}
        {count_rows(warehouse)}
        """))
    done = run_caller([str(script)], caller_env(tmp_path, tiny_champion), cwd=tmp_path)
    assert_quiet(done)
    assert printed_counts(done.stdout) == [n_utterances, n_utterances]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT status FROM ingest_runs ORDER BY started_at").fetchall() == [("completed",)] * 2
    finally:
        con.close()


def test_python_dash_c_labels_the_archive(tmp_path, archive, tiny_champion, harness_api_url):
    url, n_utterances = archive
    warehouse = tmp_path / "warehouse.duckdb"
    code = f"import duckdb; from flows.nightly import label_new_audio; {label_call(url, warehouse)}; {count_rows(warehouse)}"
    done = run_caller(["-c", code], caller_env(tmp_path, tiny_champion, harness_api_url), cwd=tmp_path)
    assert_quiet(done)
    assert printed_counts(done.stdout) == [n_utterances]


def test_code_from_standard_input_labels_the_archive(tmp_path, archive, tiny_champion, harness_api_url):
    url, n_utterances = archive
    warehouse = tmp_path / "warehouse.duckdb"
    code = f"import duckdb\nfrom flows.nightly import label_new_audio\n{label_call(url, warehouse)}\n{count_rows(warehouse)}\n"
    done = run_caller(["-"], caller_env(tmp_path, tiny_champion, harness_api_url), cwd=tmp_path, stdin=code)
    assert_quiet(done)
    assert printed_counts(done.stdout) == [n_utterances]


def test_worker_processes_that_cannot_start_fail_the_run_at_once_with_our_error(tmp_path, archive, tiny_champion,
                                                                                 harness_api_url):
    """Process workers chosen from standard input: each spawned worker looks for the file
    '<stdin>' and dies. The run fails once, recorded in the warehouse, with our error naming
    the cause and the settings to change, and the process exits well before the deadline."""
    url, _ = archive
    warehouse = tmp_path / "warehouse.duckdb"
    code = f"import time\nprint('calling at', time.time(), flush=True)\nfrom flows.nightly import label_new_audio\n{label_call(url, warehouse)}\n"
    env = caller_env(tmp_path, tiny_champion, harness_api_url, SER_DASK_PROCESSES="true", SER_DASK_START_TIMEOUT_S="45")
    done = run_caller(["-"], env, cwd=tmp_path, stdin=code)
    exited = time.time()
    called = float(done.stdout.split("calling at", 1)[1].split()[0])
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ser_pipeline.errors.NightlyRunFailed: nightly labeling run") and "ClusterStartFailed" in last_line
    for words in ("worker processes: its workers could not start", "<stdin>", "SER_DASK_PROCESSES=false", "SER_DASK_ADDRESS"):
        assert words in last_line
    assert exited - called < 40, f"{exited - called:.0f} s from the call to the process's exit"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        runs = con.execute("SELECT status, message FROM ingest_runs").fetchall()
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 0
    finally:
        con.close()
    assert len(runs) == 1 and runs[0][0] == "failed" and "ClusterStartFailed" in runs[0][1]


def test_worker_processes_still_starting_at_the_deadline_are_stopped_and_the_process_exits(tmp_path):
    """Workers that hang while importing the caller's main module: the start gives up at
    ``start_timeout_s`` with our error, and the process exits at once instead of waiting for
    Dask to close the cluster at exit."""
    script = tmp_path / "hangs.py"
    script.write_text(textwrap.dedent("""\
        import time
        if __name__ == "__mp_main__":
            time.sleep(600)  # a worker process re-importing this script never gets past it
        from flows.dask_runner import DeadlineDaskTaskRunner
        from ser_pipeline.errors import ClusterStartFailed
        runner = DeadlineDaskTaskRunner(cluster_kwargs={"processes": True, "n_workers": 2, "threads_per_worker": 1,
                                                        "dashboard_address": None}, start_timeout_s=3)
        with runner:
            started = time.monotonic()
            try:
                runner.client
            except ClusterStartFailed as error:
                print(f"gave up after {time.monotonic() - started:.1f} s: {error}", flush=True)
        print("exiting at", time.time(), flush=True)
        """))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    done = run_caller([str(script)], env, cwd=tmp_path)
    exited = time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    gave_up = next(line for line in done.stdout.splitlines() if line.startswith("gave up after"))
    assert float(gave_up.split()[3]) < 3 + 7
    assert "was not up within 3 s (SER_DASK_START_TIMEOUT_S)" in gave_up and "SER_DASK_PROCESSES=false" in gave_up
    assert exited - float(done.stdout.split("exiting at", 1)[1].split()[0]) < 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_that_cannot_be_reached_fails_within_the_deadline():
    from flows.dask_runner import DeadlineDaskTaskRunner
    from ser_pipeline.errors import ClusterStartFailed

    address = f"tcp://127.0.0.1:{_free_port()}"
    runner = DeadlineDaskTaskRunner(address=address, start_timeout_s=2)
    started = time.monotonic()
    with runner, pytest.raises(ClusterStartFailed) as raised:
        runner.client
    assert time.monotonic() - started < 2 + 7
    assert str(raised.value).startswith(f"the Dask scheduler at {address}: was not up within 2 s (SER_DASK_START_TIMEOUT_S)")
    assert "SER_DASK_ADDRESS" in str(raised.value)
