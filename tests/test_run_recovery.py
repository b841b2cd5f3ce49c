"""Runs killed mid-way: the next run marks them abandoned and removes what they left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from support.tiny_model import shared_champion

pytestmark = pytest.mark.slow

# A real nightly run whose feature-store write hangs after the temporary file is written (as
# a process killed between the write and the rename would leave it).
_HANGING_RUN = textwrap.dedent(
    """
    import sys, time
    import fsspec.implementations.local as local
    from ser_pipeline.runs.nightly import run_nightly
    from ser_pipeline.settings import get_settings

    def hang(self, *args, **kwargs):
        print("writing", flush=True)
        time.sleep(600)

    local.LocalFileSystem.mv = hang
    run_nightly(sys.argv[1], settings=get_settings())
    """
)


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return shared_champion(tmp_path_factory)


def _rows(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_killed_run_is_marked_abandoned_by_the_next_and_its_temp_files_removed(tmp_path, champion, monkeypatch, settings):
    from ser_pipeline import synthetic as synth
    from ser_pipeline import warehouse
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
    from ser_pipeline.settings import get_settings
    from ser_pipeline.storage import find_temp_files

    registry_url, _ = champion
    monkeypatch.setenv("SER_REGISTRY_URL", registry_url)
    settings = get_settings()
    url = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(url, n_surveys=1, sessions_per_survey=2, participants_per_session=2,
                                   utterances_per_session=3, sidecar="csv", seed=3)
    store = (tmp_path / "features").as_uri()
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_RUN, url], env={**os.environ}, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"  # the first temporary file is on disk
        temps = find_temp_files(store, get_settings())
        assert temps and all(t.pid == proc.pid for t in temps)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    db = tmp_path / "warehouse.duckdb"
    assert _rows(db, "SELECT status, pid FROM ingest_runs") == [("running", proc.pid)]

    report = run_nightly(url, settings=settings)

    assert report.status == "completed", nightly_markdown(report)
    assert report.utterances_loaded == len(truth)
    killed = _rows(db, f"SELECT run_id, status, abandoned_by, abandoned_at IS NOT NULL, tmp_files_removed, message "
                       f"FROM ingest_runs WHERE pid = {proc.pid}")
    assert len(killed) == 1
    run_id, status, found_by, dated, removed, message = killed[0]
    assert (status, found_by, dated, removed) == ("abandoned", report.run_id, True, len(temps))
    assert f"process {proc.pid}" in message and "gone" in message
    assert report.abandoned_runs == [run_id] and report.temp_files_removed == len(temps)
    assert not any(t.pid == proc.pid for t in find_temp_files(store, get_settings()))
    assert "Earlier runs found dead" in nightly_markdown(report)
    con = warehouse.connect(db, read_only=True, settings=settings)
    try:
        shown = warehouse.status(con)["abandoned_runs"]
    finally:
        con.close()
    assert [(r["run_id"], r["abandoned_by"], r["tmp_files_removed"]) for r in shown] == [(run_id, report.run_id, len(temps))]

    # A third run finds nothing more to clean.
    again = run_nightly(url, settings=settings)
    assert again.abandoned_runs == [] and again.temp_files_removed == 0 and again.predictions_loaded == 0


def test_a_live_run_on_another_host_is_left_alone_until_it_goes_silent(tmp_path):
    from ser_pipeline import warehouse
    from ser_pipeline.runs.recovery import recover_abandoned
    from ser_pipeline.settings import Settings

    settings = Settings(warehouse_path=tmp_path / "w.duckdb", feature_store_url=(tmp_path / "features").as_uri(),
                        run_stale_after_s=3600)
    with warehouse.writing(settings.warehouse_path, settings=settings) as con:
        for run_id, beat in (("fresh", "now()"), ("silent", "now() - INTERVAL 2 HOUR")):
            con.execute("INSERT INTO ingest_runs (run_id, started_at, status, host, pid, heartbeat_at) "
                        f"VALUES (?, now() - INTERVAL 3 HOUR, 'running', 'elsewhere', 1, {beat})", [run_id])
        recovery = recover_abandoned(settings, "me", con)
        statuses = dict(con.execute("SELECT run_id, status FROM ingest_runs").fetchall())
    assert recovery.abandoned_runs == ("silent",)
    assert statuses == {"fresh": "running", "silent": "abandoned"}
