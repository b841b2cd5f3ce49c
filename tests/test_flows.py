"""The Prefect flows against Prefect's test harness (a real temporary API server)."""

from __future__ import annotations

import asyncio

import duckdb
import pytest

from support.tiny_model import as_float_wav_scaled, shared_champion

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return shared_champion(tmp_path_factory)


@pytest.fixture
def archive(tmp_path, monkeypatch, champion):
    from ser_pipeline import synth
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", champion[0])
    get_settings.cache_clear()
    url = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(url, n_surveys=1, sessions_per_survey=2, participants_per_session=3,
                                   utterances_per_session=4, sidecar="mixed", seed=2)
    return url, truth, tmp_path


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                                sort=ArtifactSort.CREATED_DESC, limit=1)
            return found[0].data if found else None

    return asyncio.run(read())


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
    markdown = _artifact("nightly-labeling-report")
    assert "# Nightly labeling: COMPLETED" in markdown and f"| predictions loaded | {len(truth)} |" in markdown

    again = label_new_audio(url, str(tmp_path / "wh.duckdb"), return_state=True)
    assert again.is_completed() and again.result()["predictions_loaded"] == 0


def test_nightly_flow_run_fails_when_a_suite_fails(prefect_harness, archive):
    from flows.nightly import label_new_audio

    url, truth, tmp_path = archive
    as_float_wav_scaled(tmp_path / "archive" / "SV01" / "SV01-S01.wav", 1e6)
    state = label_new_audio(url, str(tmp_path / "wh.duckdb"), batch_size=4, return_state=True)
    assert state.is_failed()
    assert "validation suite failed" in state.message
    markdown = _artifact("nightly-labeling-report")
    assert "FAILED" in markdown and "**features**" in markdown


def test_retrain_flow_registers_promotes_and_reports(prefect_harness, tmp_path, monkeypatch):
    from flows.retrain import retrain_model
    from ser_pipeline import registry, synth
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_WORKERS", "1")
    get_settings.cache_clear()
    corpus = (tmp_path / "corpus").as_uri()
    synth.generate_corpus(corpus, n_speakers=5, utterances_per_emotion=2, seed=3, duration_s=(1.0, 1.5))
    result = retrain_model({"synth": corpus}, epochs=2, label_merge="calm=neutral", architecture="pooled")
    assert result["promoted"] and result["reason"] == "no champion yet"
    assert registry.champion_version() == result["version"]
    markdown = _artifact("weekly-retrain-report")
    assert "Confusion matrix" in markdown and "| UAR |" in markdown and "calm" not in markdown.split("## Per class")[1]
    # Features are cached in the store: a second run extracts nothing new and is not promoted
    # unless it is better on the same test speakers.
    second = retrain_model({"synth": corpus}, epochs=2, label_merge="calm=neutral", architecture="pooled")
    assert second["version"] != result["version"]
    assert "training windows" in _artifact("weekly-retrain-report")
    assert "(0)" in _artifact("weekly-retrain-report")
