"""Faults during the nightly run: a failing object store (a fault-injecting proxy in front of a
real moto S3 server), the process SIGKILLed mid-batch, the warehouse held by another process,
and a feature store that is full or not writable. Each ends with nothing lost, nothing
duplicated, no half-written file visible and, where the run cannot go on, a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from support.s3 import reset_moto, use_endpoint

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_champion):
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", tiny_champion[0])
    return tmp_path


def _archive(url: str, sessions: int = 3, utterances: int = 4, seed: int = 5):
    from ser_pipeline import synthetic as synth

    return synth.generate_archive(url, n_surveys=1, sessions_per_survey=sessions, participants_per_session=2,
                                  utterances_per_session=utterances, sidecar="mixed", seed=seed)


def _rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _assert_each_turn_once(db: Path, truth) -> None:
    assert _rows(db, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions") == [(len(truth), len(truth))]
    assert _rows(db, "SELECT count(*) FROM utterances") == [(len(truth),)]
    spans = set(_rows(db, "SELECT session_id, start_s, end_s FROM utterances"))
    assert spans == {(r.session_id, r.start_s, r.end_s) for r in truth.itertuples()}


# -- the object store failing mid-listing and mid-read --------------------------------------------


@pytest.fixture(scope="module")
def s3_behind_proxy():
    from support.faultproxy import moto_behind_proxy

    with moto_behind_proxy() as servers:
        yield servers


@pytest.fixture
def s3_archive(env, s3_behind_proxy, monkeypatch):
    """A generated archive in a moto bucket; settings then point at the fault proxy."""
    from ser_pipeline import storage
    from ser_pipeline.settings import get_settings

    endpoint, proxy, proxy_url = s3_behind_proxy
    reset_moto(endpoint)
    proxy.clear()
    use_endpoint(monkeypatch, endpoint)
    fs, _ = storage.filesystem("s3://archive")
    fs.mkdir("archive")
    truth = _archive("s3://archive/nightly")
    use_endpoint(monkeypatch, proxy_url)
    monkeypatch.setenv("SER_S3_TIMEOUT_S", "2")
    return proxy, truth


@pytest.mark.s3
def test_nightly_run_on_s3_survives_resets_5xx_and_slow_answers(s3_archive, tmp_path, settings):
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    proxy, truth = s3_archive
    injected = [
        proxy.add("reset", method="GET", path_contains="list-type", count=1),       # listing the archive
        proxy.add("503", method="GET", path_contains="list-type", count=1),
        proxy.add("500", method="GET", path_contains="manifest.csv", count=1),      # reading the manifest
        proxy.add("reset", method="GET", path_contains="SV01-S01.wav", count=2),    # reading recordings
        proxy.add("503", method="GET", path_contains="SV01-S02.wav", count=2),
        proxy.add("truncate", method="GET", path_contains="SV01-S03.wav", count=1),
        proxy.add("slow", method="GET", path_contains="SV01-S02.turns.csv", count=1, delay_s=3.0),  # > 2 s timeout
        proxy.add("500", method="HEAD", count=2),
    ]
    report = run_nightly("s3://archive/nightly", batch_size=4, settings=settings)
    assert report.status == "completed", nightly_markdown(report)
    assert all(rule.hits == rule.count for rule in injected), [(r.action, r.path_contains, r.hits) for r in injected]
    _assert_each_turn_once(tmp_path / "warehouse.duckdb", truth)


@pytest.mark.s3
def test_a_recording_the_store_keeps_refusing_is_quarantined_without_credentials(s3_archive, tmp_path, monkeypatch, settings):
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
    from ser_pipeline.settings import get_settings
    from support.s3 import TEST_CREDENTIALS

    proxy, truth = s3_archive
    monkeypatch.setenv("SER_S3_MAX_ATTEMPTS", "2")
    settings = get_settings()
    proxy.add("500", method="GET", path_contains="SV01-S02.wav", count=10_000)
    report = run_nightly("s3://archive/nightly", batch_size=4, settings=settings)
    markdown = nightly_markdown(report)
    assert report.status == "partial", markdown
    ((stage, source, reason),) = _rows(tmp_path / "warehouse.duckdb", "SELECT stage, source, reason FROM quarantine")
    assert stage == "audio" and source.endswith("SV01-S02.wav") and ("500" in reason or "InternalError" in reason), reason
    assert TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in markdown + reason
    labelled = {s for (s,) in _rows(tmp_path / "warehouse.duckdb", "SELECT DISTINCT session_id FROM utterances")}
    assert labelled == {"SV01-S01", "SV01-S03"}
    proxy.clear()  # the store recovers: the next night labels the rest, nothing twice
    again = run_nightly("s3://archive/nightly", batch_size=4, settings=settings)
    assert again.status == "completed"
    _assert_each_turn_once(tmp_path / "warehouse.duckdb", truth)


# -- the process killed in the middle of a batch -----------------------------------------------------

KILLER = """
import os, signal, sys
from ser_pipeline import storage
from ser_pipeline.features import store as feature_store
from ser_pipeline.runs import nightly
from ser_pipeline import warehouse
from ser_pipeline.settings import get_settings

point, archive, db = sys.argv[1], sys.argv[2], sys.argv[3]
batches = {"load": 0}

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "mid-parquet-write":
    # the second batch's Parquet file is half written when the process dies (batches are
    # labelled lazily, so the second one's features are written after the first one's load)
    real = feature_store.write_bytes_atomic
    def half_then_die(url, data, settings=None):
        if batches["load"] < 1:
            return real(url, data, settings)
        fs, path = storage.filesystem(url, settings)
        tmp = path.rsplit("/", 1)[0] + "/.tmp-killed-" + path.rsplit("/", 1)[1]
        with fs.open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            die()
    feature_store.write_bytes_atomic = half_then_die
elif point == "between-loaders":
    # the second batch's utterances are committed, its predictions not
    real_p = warehouse.load_predictions
    def die_second(*a, **k):
        if batches["load"] >= 2:
            die()
        return real_p(*a, **k)
    warehouse.load_predictions = die_second
elif point == "mid-transaction":
    # inside the second batch's predictions transaction, after the INSERT, before COMMIT
    from ser_pipeline.warehouse import loads
    real_insert = loads._insert_new
    def insert_then_die(con, table, frame, columns):
        n = real_insert(con, table, frame, columns)
        if table == "predictions" and batches["load"] >= 2:
            die()
        return n
    loads._insert_new = insert_then_die

def step(fn):
    if fn is not nightly.load_batch:
        return fn
    def counted(*a, **k):
        batches["load"] += 1
        return fn(*a, **k)
    return counted

nightly.run_nightly(archive, db, batch_size=4, step=step, settings=get_settings())
print("finished without being killed")
"""


@pytest.mark.parametrize("point", ["mid-parquet-write", "between-loaders", "mid-transaction"])
def test_killed_mid_batch_then_run_again_stores_every_utterance_once(env, point, settings):
    from ser_pipeline.features.store import feature_files, read_features
    from ser_pipeline.inference.predict import spec_of
    from ser_pipeline.runs.nightly import run_nightly
    from ser_pipeline.training.registry import load_model
    from ser_pipeline.settings import get_settings

    tmp_path = env
    url = (tmp_path / "archive").as_uri()
    truth = _archive(url)  # 3 sessions of 4 turns: three batches of 4
    db = tmp_path / "warehouse.duckdb"
    child = subprocess.run([sys.executable, "-c", KILLER, point, url, str(db)], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
    assert child.returncode == -9, child.stdout + child.stderr[-3000:]
    first_batch = set(truth.session_id.unique()[:1])
    loaded = {s for (s,) in _rows(db, "SELECT DISTINCT u.session_id FROM utterances u JOIN predictions USING (utterance_id)")}
    assert loaded == first_batch  # the first batch completed before the kill, the second did not
    assert _rows(db, "SELECT status FROM ingest_runs") == [("running",)]  # the killed run never finished

    store = settings.feature_store_url
    spec = spec_of(load_model(settings.registry_url, settings=settings), settings)  # the nightly run stores the champion's features
    leftovers = [p for p in (tmp_path / "features").rglob(".tmp-*")]
    assert bool(leftovers) == (point == "mid-parquet-write")

    report = run_nightly(url, str(db), batch_size=4, settings=settings)
    assert report.status == "completed"
    _assert_each_turn_once(db, truth)
    # Readers see only complete Parquet files, each readable, holding every utterance once.
    files = feature_files(store, spec)
    assert files and not any(".tmp-" in f for f in files)
    for f in files:
        pq.read_table(f.removeprefix("file://"))
    keys, _ = read_features(store, spec, families=list(spec.families)[:1])
    assert set(keys["utterance_id"]) == {u for (u,) in _rows(db, "SELECT utterance_id FROM utterances")}
    assert not keys.duplicated(["utterance_id", "window"]).any()


# -- the warehouse held by another process ----------------------------------------------------------

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def _hold(db: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)


def test_a_warehouse_held_elsewhere_is_waited_for_then_a_clear_error_and_no_partial_batch(env, monkeypatch, settings):
    from ser_pipeline.errors import WarehouseBusy
    from ser_pipeline.runs.nightly import load_batch, run_nightly
    from ser_pipeline.settings import get_settings

    tmp_path = env
    monkeypatch.setenv("SER_WAREHOUSE_WAIT_S", "2")
    settings = get_settings()
    url = (tmp_path / "archive").as_uri()
    truth = _archive(url)
    db = tmp_path / "warehouse.duckdb"

    # Held before the run starts: a bounded wait, then WarehouseBusy naming the holder.
    holder = _hold(db)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match=rf"locked by process {holder.pid}.*waited 2 s"):
            run_nightly(url, str(db), batch_size=4, settings=settings)
        assert time.monotonic() - started < 30
    finally:
        _release(holder)

    # Taken while the run is between batches: the first batch is loaded whole, the second
    # not at all, and the run stops with the same clear error.
    holders = []

    def step(fn):
        if fn is not load_batch:
            return fn

        def load(settings, batch, *args):
            if batch.index == 1:
                holders.append(_hold(db))
            return fn(settings, batch, *args)
        return load

    try:
        with pytest.raises(WarehouseBusy, match="locked by process"):
            run_nightly(url, str(db), batch_size=4, step=step, settings=settings)
    finally:
        for h in holders:
            _release(h)
    first = truth.session_id.unique()[0]
    assert _rows(db, "SELECT DISTINCT session_id FROM utterances") == [(first,)]
    assert _rows(db, "SELECT count(*) FROM predictions") == [((truth.session_id == first).sum(),)]

    assert run_nightly(url, str(db), batch_size=4, settings=settings).status == "completed"
    _assert_each_turn_once(db, truth)


# -- the feature store full or not writable ----------------------------------------------------------


def _store_outcome(tmp_path: Path, store_url: str, truth_url: str, truth, monkeypatch, expect: str):
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_FEATURE_STORE_URL", store_url)
    settings = get_settings()
    report = run_nightly(truth_url, batch_size=4, settings=settings)
    markdown = nightly_markdown(report)
    assert report.status == "failed" and report.error, markdown
    assert report.error.startswith("FeatureStoreError: cannot write to the feature store") and expect in report.error, report.error
    assert expect in markdown
    db = tmp_path / "warehouse.duckdb"
    assert _rows(db, "SELECT status, message LIKE '%FeatureStoreError%' FROM ingest_runs") == [("failed", True)]
    return report, db


def test_a_full_feature_store_stops_the_run_with_a_clear_error_and_nothing_half_loaded(env, monkeypatch, settings):
    from support.fullfs import FullMemoryFileSystem

    from ser_pipeline import storage
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path = env
    url = (tmp_path / "archive").as_uri()
    truth = _archive(url)
    # Room for the first batch's Parquet file and not the second's.
    run_nightly(url, str(tmp_path / "probe.duckdb"), batch_size=4, settings=settings)
    one_batch = max(p.stat().st_size for p in (tmp_path / "features").rglob("part-*.parquet"))
    FullMemoryFileSystem.reset(capacity=int(one_batch * 1.5))

    report, db = _store_outcome(tmp_path, "fullmem://features", url, truth, monkeypatch, "No space left on device")
    first = truth.session_id.unique()[0]
    assert report.predictions_loaded == (truth.session_id == first).sum()
    assert _rows(db, "SELECT DISTINCT session_id FROM utterances") == [(first,)]  # batch 2 not loaded at all
    fs, _ = storage.filesystem("fullmem://features")
    assert [p for p in fs.find("/features") if ".tmp-" in p] == []  # the partial file was removed
    assert len([p for p in fs.find("/features") if p.endswith(".parquet")]) == 1

    FullMemoryFileSystem.capacity = 1 << 40  # room again: the next run finishes the job, nothing twice
    assert run_nightly(url, batch_size=4, settings=settings).status == "completed"
    _assert_each_turn_once(db, truth)


def test_a_read_only_feature_store_is_a_clear_error(env, monkeypatch):
    tmp_path = env
    url = (tmp_path / "archive").as_uri()
    truth = _archive(url, sessions=1)
    store = tmp_path / "readonly-features"
    store.mkdir()
    undo = _make_read_only(store)
    try:
        report, db = _store_outcome(tmp_path, store.as_uri(), url, truth, monkeypatch, "ermission denied" if os.geteuid() else "Operation not permitted")
        assert _rows(db, "SELECT count(*) FROM utterances") == [(0,)]
        assert not list(store.rglob("*.parquet"))
    finally:
        undo()


def _make_read_only(path: Path):
    """Make ``path`` unwritable even for root (``chattr +i`` when running as root, else chmod)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"running as root and chattr +i is not available here: {done.stderr.decode().strip()}")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
