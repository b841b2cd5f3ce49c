"""The Prefect flows against Prefect's test harness (a real temporary API server)."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from ser_pipeline.errors import NightlyRunFailed
from support.prefect_artifacts import latest_artifact
from support.tiny_model import as_float_wav_scaled, shared_champion

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return shared_champion(tmp_path_factory)


@pytest.fixture
def archive(tmp_path, monkeypatch, champion):
    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", champion[0])
    url = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(url, n_surveys=1, sessions_per_survey=2, participants_per_session=3,
                                   utterances_per_session=4, sidecar="mixed", seed=2)
    return url, truth, tmp_path


def test_nightly_flow_loads_the_warehouse_and_publishes_its_report(prefect_harness, archive):
    from flows.nightly import label_new_audio

    url, truth, tmp_path = archive
    state = label_new_audio(url, str(tmp_path / "wh.duckdb"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["predictions_loaded"] == len(truth) and summary["status"] == "completed"
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(DISTINCT utterance_id), count(*) FROM predictions").fetchone() == (len(truth), len(truth))
        flow_run_id = con.execute("SELECT flow_run_id FROM ingest_runs").fetchone()[0]
    finally:
        con.close()
    assert flow_run_id == str(state.state_details.flow_run_id)
    markdown = latest_artifact("nightly-labeling-report")
    assert "# Nightly labeling: COMPLETED" in markdown and f"| predictions loaded | {len(truth)} |" in markdown

    again = label_new_audio(url, str(tmp_path / "wh.duckdb"), return_state=True)
    assert again.is_completed() and again.result()["predictions_loaded"] == 0


def _warehouse_rows(path) -> dict[str, list]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "predictions": con.execute("SELECT utterance_id, model_version, label, context_label FROM predictions "
                                       "ORDER BY utterance_id").fetchall(),
            "confidences": con.execute("SELECT confidence, context_confidence FROM predictions ORDER BY utterance_id").fetchall(),
            "utterances": con.execute("SELECT utterance_id, session_id, participant_key, start_s, end_s, question "
                                      "FROM utterances ORDER BY utterance_id").fetchall(),
        }
    finally:
        con.close()


def test_nightly_flow_on_two_dask_workers_loads_the_same_rows_as_the_default_runner(prefect_harness, archive):
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.nightly import label_new_audio

    url, truth, tmp_path = archive
    runners = {
        "threads": ThreadPoolTaskRunner(),  # Prefect's default runner, in the flow's process
        "dask": DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}),
    }
    rows = {}
    for name, runner in runners.items():
        state = label_new_audio.with_options(task_runner=runner)(url, str(tmp_path / f"{name}.duckdb"), batch_size=4, return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        assert summary["batches"] == 2 and summary["predictions_loaded"] == len(truth)
        rows[name] = _warehouse_rows(tmp_path / f"{name}.duckdb")
    assert len(rows["dask"]["predictions"]) == len(truth)
    assert rows["dask"]["predictions"] == rows["threads"]["predictions"]
    assert rows["dask"]["utterances"] == rows["threads"]["utterances"]
    # Two batches labelled at once in one process (the thread runner) may sum features and
    # logits in another order (BLAS and the Keras backend's thread pools): the 5th decimal moves.
    assert np.allclose(rows["dask"]["confidences"], rows["threads"]["confidences"], atol=1e-4)


def test_importing_the_flows_turns_prefect_telemetry_off_unless_chosen(tmp_path):
    import subprocess
    import sys

    check = ("import flows.nightly; from prefect.settings import get_current_settings; "
             "from prefect._internal.analytics.enabled import is_telemetry_enabled; "
             "print(get_current_settings().server.analytics_enabled, is_telemetry_enabled())")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")}
    env["PREFECT_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
    chosen = subprocess.run([sys.executable, "-c", check], env={**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "true"},
                            capture_output=True, text=True, timeout=120)
    assert chosen.stdout.split()[0] == "True"


def test_store_reading_steps_retry_what_may_pass_and_fail_at_once_on_our_errors(prefect_harness):
    from prefect import flow, task

    from flows.task_options import READS_STORE
    from ser_pipeline.training.registry import ModelNotFound

    attempts = []

    @task(**{**READS_STORE, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def read(error):
        attempts.append(type(error).__name__)
        raise error

    @flow
    def night(error):
        return read(error)

    for error in (OSError("503 Slow Down"), ModelNotFound("no champion")):
        with pytest.raises(type(error)):
            night(error)
    assert attempts == ["OSError"] * 3 + ["ModelNotFound"]


def test_settings_choose_the_flows_dask_cluster_threads_unless_processes_are_asked_for(monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.nightly import label_new_audio, task_runner
    from ser_pipeline.settings import Settings

    remote = task_runner(Settings(dask_address="tcp://scheduler.example:8786", dask_start_timeout_s=5))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://scheduler.example:8786"
    assert remote.start_timeout_s == 5
    shape = ("processes", "n_workers", "threads_per_worker")
    threads = task_runner(Settings(dask_workers=3))  # the default: 3 batches at once on threads of this process
    assert threads.address is None and [threads.cluster_kwargs[k] for k in shape] == [False, 1, 3]
    processes = task_runner(Settings(dask_workers=3, dask_processes=True))
    assert [processes.cluster_kwargs[k] for k in shape] == [True, 3, 1]
    copy = processes.duplicate()  # what Prefect enters for each flow run
    assert copy == processes and copy.start_timeout_s == 60.0
    # A run given no runner (a direct call, a deployment's run) reads the environment when it starts.
    monkeypatch.setenv("SER_DASK_PROCESSES", "true")
    assert label_new_audio.task_runner.duplicate().cluster_kwargs["processes"] is True
    monkeypatch.delenv("SER_DASK_PROCESSES")
    assert label_new_audio.task_runner.duplicate().cluster_kwargs["processes"] is False


def test_nightly_flow_run_fails_when_a_suite_fails(prefect_harness, archive, monkeypatch, tmp_path_factory):
    """A spectral-functionals champion on a float export a million times too loud: its features
    leave the suite's range (the encoder's level-relative log-mel would not notice)."""
    from flows.nightly import label_new_audio

    url, truth, tmp_path = archive
    monkeypatch.setenv("SER_REGISTRY_URL", shared_champion(tmp_path_factory, input_kind="functionals")[0])
    as_float_wav_scaled(tmp_path / "archive" / "SV01" / "SV01-S01.wav", 1e6)
    state = label_new_audio(url, str(tmp_path / "wh.duckdb"), batch_size=4, return_state=True)
    assert state.is_failed()
    assert "NightlyRunFailed: nightly labeling run" in state.message and "a validation suite failed" in state.message
    with pytest.raises(NightlyRunFailed) as raised:
        state.result()
    assert raised.value.summary["status"] == "failed" and raised.value.summary["batches_failed"] == 1
    markdown = latest_artifact("nightly-labeling-report")
    assert "FAILED" in markdown and "**features**" in markdown


def test_nightly_flow_called_directly_without_a_champion_raises_our_error(prefect_harness, archive, monkeypatch):
    from flows.nightly import label_new_audio
    from ser_pipeline.settings import get_settings

    url, truth, tmp_path = archive
    monkeypatch.setenv("SER_REGISTRY_URL", (tmp_path / "empty-registry").as_uri())
    settings = get_settings()
    with pytest.raises(NightlyRunFailed, match=r"failed: ModelNotFound: .*champion") as raised:
        label_new_audio(url, str(tmp_path / "wh.duckdb"))
    assert raised.value.summary["status"] == "failed" and raised.value.summary["predictions_loaded"] == 0
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        status, message = con.execute("SELECT status, message FROM ingest_runs").fetchone()
    finally:
        con.close()
    assert status == "failed" and "ModelNotFound" in message
    assert "FAILED" in latest_artifact("nightly-labeling-report")


def test_retrain_flow_registers_promotes_and_reports(prefect_harness, tmp_path, monkeypatch):
    from flows.retrain import retrain_model
    from ser_pipeline.training import registry
    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_WORKERS", "1")
    settings = get_settings()  # as the flow resolves them: a deployment's run passes none
    corpus = (tmp_path / "corpus").as_uri()
    synth.generate_corpus(corpus, n_speakers=5, utterances_per_emotion=2, seed=3, duration_s=(1.0, 1.5))
    result = retrain_model({"synth": corpus}, epochs=2, label_merge="calm=neutral", architecture="pooled")
    assert result["promoted"] and result["reason"] == "no champion yet"
    assert registry.champion_version(settings.registry_url, settings) == result["version"]
    markdown = latest_artifact("weekly-retrain-report")
    assert "Confusion matrix" in markdown and "| UAR |" in markdown and "calm" not in markdown.split("## Per class")[1]
    # Features are cached in the store: a second run extracts nothing new and is not promoted
    # unless it is better on the same test speakers.
    second = retrain_model({"synth": corpus}, epochs=2, label_merge="calm=neutral", architecture="pooled")
    assert second["version"] != result["version"]
    first_windows = next(line for line in markdown.splitlines() if line.startswith("| training windows (extracted this run) |"))
    n_windows = first_windows.split("|")[2].split()[0]
    assert first_windows.endswith(f"| {n_windows} ({n_windows}) |")  # the first run extracted every window
    assert f"| training windows (extracted this run) | {n_windows} (0) |" in latest_artifact("weekly-retrain-report")
