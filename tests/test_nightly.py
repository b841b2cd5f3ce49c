"""The nightly labeling run (library, no Prefect) on generated archives, a real model and DuckDB."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from support.tiny_model import as_float_wav_scaled, shared_champion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A registry holding a small trained champion (shared with the flow and end-to-end tests)."""
    return shared_champion(tmp_path_factory)


@pytest.fixture
def env(tmp_path, monkeypatch, champion):
    from ser_pipeline.settings import get_settings

    registry_url, version = champion
    monkeypatch.setenv("SER_REGISTRY_URL", registry_url)
    return tmp_path, version


@pytest.fixture
def functionals_env(tmp_path, monkeypatch, tmp_path_factory):
    """A champion of spectral functionals (the 2026-12-07 recipe): its features leave the
    features suite's plausible range on a float export a million times too loud, which the
    encoder's level-relative log-mel does not notice."""
    registry_url, version = shared_champion(tmp_path_factory, input_kind="functionals")
    monkeypatch.setenv("SER_REGISTRY_URL", registry_url)
    return tmp_path, version


def _archive(tmp_path, **kwargs):
    from ser_pipeline import synthetic as synth

    url = (tmp_path / "archive").as_uri()
    params = dict(n_surveys=1, sessions_per_survey=2, participants_per_session=3, utterances_per_session=4, sidecar="csv", seed=1)
    params.update(kwargs)
    return url, synth.generate_archive(url, **params)


def _rows(tmp_path, sql):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_run_labels_every_turn_once_and_a_rerun_adds_nothing(env, settings):
    from ser_pipeline.labels import EMOTIONS
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path, version = env
    url, truth = _archive(tmp_path)
    report = run_nightly(url, settings=settings)
    assert report.status == "completed", nightly_markdown(report)
    assert report.model_version == version
    assert report.utterances_loaded == report.predictions_loaded == len(truth)
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions") == [(len(truth), len(truth))]
    labels = {r[0] for r in _rows(tmp_path, "SELECT DISTINCT label FROM predictions")}
    assert labels <= set(EMOTIONS)
    # Turn times came from the sidecar: every utterance matches a true turn.
    spans = set(_rows(tmp_path, "SELECT session_id, start_s, end_s FROM utterances"))
    assert spans == {(r.session_id, r.start_s, r.end_s) for r in truth.itertuples()}
    markdown = nightly_markdown(report)
    assert "COMPLETED" in markdown and "Emotion mix" in markdown and "Time per stage" in markdown

    again = run_nightly(url, settings=settings)
    assert again.status == "completed"
    assert again.predictions_loaded == 0 and again.recordings_skipped == again.recordings_seen == 2
    assert _rows(tmp_path, "SELECT count(*) FROM predictions") == [(len(truth),)]
    runs = _rows(tmp_path, "SELECT status, n_predictions FROM ingest_runs ORDER BY started_at")
    assert runs == [("completed", len(truth)), ("completed", 0)]


def test_sessions_without_sidecars_are_segmented_by_vad(env, settings):
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path, sidecar=None, utterances_per_session=6)
    report = run_nightly(url, settings=settings)
    assert report.status == "completed"
    found = report.predictions_loaded
    assert 0.7 * len(truth) <= found <= 1.3 * len(truth)
    assert _rows(tmp_path, "SELECT count(*) FROM utterances WHERE participant_key IS NULL") == [(found,)]


def test_a_corrupt_recording_is_quarantined_and_the_rest_is_labelled(env, settings):
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path)
    broken = tmp_path / "archive" / "SV01" / "SV01-S02.wav"
    broken.write_bytes(broken.read_bytes()[:30])
    report = run_nightly(url, settings=settings)
    assert report.status == "partial"
    assert [q.stage for q in report.quarantined] == ["audio"]
    assert "SV01-S02.wav" in report.quarantined[0].source
    assert report.predictions_loaded == (truth.session_id == "SV01-S01").sum()
    assert _rows(tmp_path, "SELECT stage, reason LIKE '%WAV%' FROM quarantine") == [("audio", True)]


def test_an_unnormalised_float_export_is_heard_like_any_other_by_the_encoder(env, settings):
    """Whisper's log-mel is taken relative to the clip's own peak, so a float WAV a million
    times too loud is labelled like the rest."""
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path)
    as_float_wav_scaled(tmp_path / "archive" / "SV01" / "SV01-S02.wav", 1e6)
    report = run_nightly(url, batch_size=4, settings=settings)
    assert report.status == "completed", nightly_markdown(report)
    assert report.predictions_loaded == len(truth)


def test_a_failed_feature_suite_stops_that_batch_and_fails_the_run(functionals_env, settings):
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path, _ = functionals_env
    url, truth = _archive(tmp_path)
    as_float_wav_scaled(tmp_path / "archive" / "SV01" / "SV01-S02.wav", 1e6)  # an un-normalised float export
    report = run_nightly(url, batch_size=4, settings=settings)  # one session per batch
    assert report.failed and report.status == "failed" and report.batches_failed == 1
    failed = [r for _, r in report.validations if not r.success]
    assert [r.suite for r in failed] == ["features"]
    assert any(f.column in ("mel_max", "mfcc_max", "functionals_max") for f in failed[0].failed)
    assert report.predictions_loaded == (truth.session_id == "SV01-S01").sum()
    sessions = {r[0] for r in _rows(tmp_path, "SELECT DISTINCT session_id FROM utterances")}
    assert sessions == {"SV01-S01"}
    assert _rows(tmp_path, "SELECT suite, success FROM validation_results WHERE NOT success") == [("features", False)]
    assert _rows(tmp_path, "SELECT status FROM ingest_runs") == [("failed",)]
    assert "features" in nightly_markdown(report) and "FAILED" in nightly_markdown(report)


def test_a_session_that_cannot_be_read_is_quarantined_and_the_rest_of_its_survey_labelled(env, settings):
    import shutil

    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path, sessions_per_survey=3)
    survey = tmp_path / "archive" / "SV01"
    manifest = survey / "manifest.csv"
    good = manifest.read_text()
    # Row 1 names a file that is not there; row 2's audio is a folder.
    shutil.move(survey / "SV01-S02.wav", tmp_path / "SV01-S02.wav")
    (survey / "SV01-S02.wav").mkdir()
    manifest.write_text(good.replace("SV01-S01.wav", "missing.wav"))
    report = run_nightly(url, settings=settings)
    assert report.status == "partial" and not report.failed, nightly_markdown(report)
    quarantined = {q.source.rsplit("/", 1)[-1]: q for q in report.quarantined}
    assert set(quarantined) == {"missing.wav", "SV01-S02.wav"} and {q.stage for q in report.quarantined} == {"session"}
    assert "session SV01-S01 (manifest row 1)" in quarantined["missing.wav"].reason
    assert "audio_file_exists" in quarantined["missing.wav"].reason and "'missing.wav'" in quarantined["missing.wav"].reason
    assert "session SV01-S02 (manifest row 2)" in quarantined["SV01-S02.wav"].reason
    labelled = truth[truth.session_id == "SV01-S03"]
    assert report.predictions_loaded == len(labelled)
    assert _rows(tmp_path, "SELECT DISTINCT session_id FROM utterances") == [("SV01-S03",)]
    assert _rows(tmp_path, "SELECT stage, count(*) FROM quarantine GROUP BY 1") == [("session", 2)]
    assert _rows(tmp_path, "SELECT status FROM ingest_runs") == [("partial",)]
    assert "| session |" in nightly_markdown(report)

    # Fixed, the next run labels those two sessions, and only them.
    (survey / "SV01-S02.wav").rmdir()
    shutil.move(tmp_path / "SV01-S02.wav", survey / "SV01-S02.wav")
    manifest.write_text(good)
    fixed = run_nightly(url, settings=settings)
    assert fixed.status == "completed" and fixed.predictions_loaded == len(truth) - len(labelled)
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions") == [(len(truth), len(truth))]


def test_a_survey_with_a_missing_and_a_cut_off_recording_labels_everything_else_and_reports_both(env, settings):
    import soundfile as sf

    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path, sessions_per_survey=3)
    survey = tmp_path / "archive" / "SV01"
    (survey / "SV01-S01.wav").unlink()  # the manifest still names it
    cut = survey / "SV01-S02.wav"
    declared_s = sf.info(str(cut)).duration
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])  # the recorder crashed
    found_s = sf.info(str(cut)).duration
    with (survey / "SV01-S03.wav").open("ab") as fh:
        fh.write(b"\x00garbage after the audio" * 40)
    report = run_nightly(url, settings=settings)
    markdown = nightly_markdown(report)
    assert report.status == "partial" and not report.failed, markdown

    assert [(q.stage, q.source.endswith("SV01-S01.wav")) for q in report.quarantined] == [("session", True)]
    kept = truth[(truth.session_id == "SV01-S03") | ((truth.session_id == "SV01-S02") & (truth.start_s < found_s))]
    assert len(kept) < (truth.session_id != "SV01-S01").sum()  # the cut lost some turns
    assert report.predictions_loaded == len(kept)
    ends = dict(_rows(tmp_path, "SELECT session_id, max(end_s) FROM utterances GROUP BY 1"))
    assert set(ends) == {"SV01-S02", "SV01-S03"} and ends["SV01-S02"] <= found_s + 1e-6

    warnings = {w.kind: w for w in report.warnings}
    assert set(warnings) == {"truncated", "trailing_bytes"}
    assert warnings["truncated"].source.endswith("SV01-S02.wav")
    assert warnings["truncated"].declared_s == pytest.approx(declared_s, abs=0.01)
    assert warnings["truncated"].found_s == pytest.approx(found_s, abs=0.01)
    rows = _rows(tmp_path, "SELECT kind, session_id, declared_s, found_s, message FROM recording_warnings ORDER BY kind")
    assert [(k, sid) for k, sid, *_ in rows] == [("trailing_bytes", "SV01-S03"), ("truncated", "SV01-S02")]
    assert rows[1][2] == pytest.approx(declared_s, abs=0.01) and rows[1][3] == pytest.approx(found_s, abs=0.01)
    assert "truncated WAV data: header declares" in rows[1][4]
    assert "Labelled with a warning" in markdown and "SV01-S02.wav" in markdown

    # Nothing new: no new prediction, and the warning rows are kept, not duplicated.
    again = run_nightly(url, settings=settings)
    assert again.predictions_loaded == 0 and not again.warnings
    assert _rows(tmp_path, "SELECT count(*) FROM recording_warnings") == [(2,)]


@pytest.mark.parametrize("breakage, reason", [
    ("duplicate", "expect_column_values_to_be_unique on session_id"),
    ("survey_id", "differs from the folder name"),
    ("no_column", "expect_column_to_exist on participants"),
    ("unparseable", "ParserError"),
])
def test_a_manifest_wrong_as_a_whole_quarantines_its_survey_and_others_go_on(env, breakage, reason, settings):
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path, n_surveys=2, sessions_per_survey=1)
    manifest = tmp_path / "archive" / "SV02" / "manifest.csv"
    if breakage == "no_column":
        pd.read_csv(manifest, dtype=str).drop(columns=["participants"]).to_csv(manifest, index=False)
    else:
        header, row = manifest.read_text().splitlines()[:2]
        broken = {
            "duplicate": [header, row, row],
            "survey_id": [header, row.replace(",SV02,", ",SV99,", 1)],
            "unparseable": [header, row, 'x,"unclosed'],
        }[breakage]
        manifest.write_text("\n".join(broken) + "\n")
    report = run_nightly(url, settings=settings)
    assert report.status == "partial" and not report.failed
    assert [(q.stage, q.source.endswith("/SV02")) for q in report.quarantined] == [("manifest", True)]
    assert reason in report.quarantined[0].reason, report.quarantined[0].reason
    assert _rows(tmp_path, "SELECT DISTINCT survey_id FROM sessions") == [("SV01",)]
    assert report.predictions_loaded == (truth.survey_id == "SV01").sum()


def test_a_folder_of_recordings_without_a_manifest_is_reported_until_ser_manifest_init(env, settings):
    from typer.testing import CliRunner

    from ser_pipeline.cli import app
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path)
    folder = tmp_path / "archive" / "SV01"
    (folder / "manifest.csv").unlink()
    (folder / "participants.csv").unlink()
    for sidecar in folder.glob("*.turns.csv"):
        sidecar.unlink()  # a folder as a recorder leaves it: audio only
    for night in range(2):
        report = run_nightly(url, settings=settings)
        assert report.status == "partial" and report.surveys == 0 and report.predictions_loaded == 0
        assert [(q.stage, q.source) for q in report.quarantined] == [("manifest", folder.as_uri())]
        assert report.quarantined[0].reason == (f"no manifest.csv; 2 audio files not labelled; "
                                                f"write one with `ser manifest init {folder.as_uri()}`")
        assert _rows(tmp_path, "SELECT stage, count(*) FROM quarantine GROUP BY 1") == [("manifest", 1)]
        assert _rows(tmp_path, "SELECT status FROM ingest_runs ORDER BY started_at DESC LIMIT 1") == [("partial",)]

    result = CliRunner().invoke(app, ["manifest", "init", folder.as_uri()])
    assert result.exit_code == 0, result.output
    labelled = run_nightly(url, settings=settings)
    assert labelled.status == "completed" and not labelled.quarantined, labelled.quarantined
    assert labelled.surveys == 1 and labelled.sessions == 2 and labelled.predictions_loaded > 0
    assert {r[0] for r in _rows(tmp_path, "SELECT DISTINCT session_id FROM utterances")} == {"SV01-S01", "SV01-S02"}


def test_cli_label_runs_the_same_steps_and_exits_1_on_failure(functionals_env):
    import json

    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    tmp_path, _ = functionals_env
    url, truth = _archive(tmp_path)
    result = CliRunner().invoke(app, ["label", "--archive-url", url, "--json", "--report", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["predictions_loaded"] == len(truth) and summary["status"] == "completed"
    assert (tmp_path / "r.md").read_text().startswith("# Nightly labeling: COMPLETED")
    as_float_wav_scaled(tmp_path / "archive" / "SV01" / "SV01-S01.wav", 1e6)
    (tmp_path / "warehouse.duckdb").unlink()
    assert CliRunner().invoke(app, ["label", "--archive-url", url, "--batch-size", "4"]).exit_code == 1


def test_unchanged_recordings_are_not_read_again_and_changed_ones_are(env, settings):
    import os

    from ser_pipeline.runs.nightly import run_nightly

    tmp_path, _ = env
    url, truth = _archive(tmp_path)
    assert run_nightly(url, settings=settings).predictions_loaded == len(truth)
    assert len(list((tmp_path / "features" / "_recordings").glob("*.json"))) == 2
    # Same size and modification time: the recording counts as unchanged, and its bytes are not
    # read at all (they are garbage now, and the run still finds nothing to do).
    recording = tmp_path / "archive" / "SV01" / "SV01-S01.wav"
    stat = recording.stat()
    recording.write_bytes(b"\0" * stat.st_size)
    os.utime(recording, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = run_nightly(url, settings=settings)
    assert again.status == "completed" and again.recordings_skipped == 2 and not again.quarantined
    # A new modification time: read again, found broken, quarantined.
    os.utime(recording, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = run_nightly(url, settings=settings)
    assert [(q.stage, q.source.endswith("SV01-S01.wav")) for q in third.quarantined] == [("audio", True)]


def _planned(tmp_path, **kwargs):
    from ser_pipeline.archive.manifest import read_archive
    from ser_pipeline.runs.nightly import plan
    from ser_pipeline.settings import get_settings

    url, truth = _archive(tmp_path, **kwargs)
    settings = get_settings().model_copy(update={"archive_url": url})
    return settings, plan(settings, read_archive(url, settings), "v-test"), truth


@pytest.mark.parametrize("sample_rate", [22_050, 44_100])
def test_decoding_a_recording_once_gives_the_windows_of_decoding_each_utterance(env, sample_rate):
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.features.spec import FeatureSpec, clip_windows
    from ser_pipeline.features.frames import extract_features
    from ser_pipeline.runs.nightly import featurise_batch

    tmp_path, _ = env
    settings, planned, truth = _planned(tmp_path, sample_rate=sample_rate, utterances_per_session=5)
    batch = planned.batches[0]
    spec = FeatureSpec.from_settings(settings)
    # Spans of at most 6 s: several decodes per recording, each sliced into utterances.
    made = featurise_batch(settings.model_copy(update={"decode_span_s": 6.0}), batch, spec)
    assert not made.quarantined and set(made.timings) == {"decode + resample", "features", "feature store"}
    def alone_samples(u):  # each utterance decoded by itself, DC offset removed as featurise does
        y = load_audio(u.source_uri, spec.sample_rate, offset_s=u.start_s, duration_s=u.end_s - u.start_s).samples
        return y - np.float32(y.mean(dtype=np.float64))

    windows = [w for u in batch.utterances for w in clip_windows(alone_samples(u), spec)]
    alone = extract_features(windows, spec)
    assert len(made.keys) == len(windows) and list(dict.fromkeys(made.keys.utterance_id)) == [u.utterance_id for u in batch.utterances]
    for family in ("mfcc", "mel"):
        if sample_rate == spec.sample_rate:  # no resampling: the very same samples
            np.testing.assert_allclose(made.feats[family], alone[family], rtol=1e-5, atol=1e-4)
        else:  # one resampling of the stretch vs one per utterance: only the edges differ
            assert np.median(np.abs(made.feats[family] - alone[family])) < 0.05 * np.abs(alone[family]).mean()


def test_a_recording_cut_short_quarantines_only_the_utterances_past_the_cut(env):
    import soundfile as sf

    from ser_pipeline.features.spec import FeatureSpec
    from ser_pipeline.runs.nightly import featurise_batch

    tmp_path, _ = env
    settings, planned, truth = _planned(tmp_path, sessions_per_survey=1, utterances_per_session=6)
    batch = planned.batches[0]
    path = tmp_path / "archive" / "SV01" / "SV01-S01.wav"
    y, sr = sf.read(path, dtype="float32")
    cut_s = (batch.utterances[3].start_s + batch.utterances[3].end_s) / 2
    sf.write(path, y[: int(cut_s * sr)], sr)  # a valid but shorter file: the tail's turns have no audio
    made = featurise_batch(settings, batch, FeatureSpec.from_settings(settings))
    gone = {q.content_hash for q in made.quarantined}
    assert gone == {u.utterance_id for u in batch.utterances[4:]}
    assert set(made.keys.utterance_id) == {u.utterance_id for u in batch.utterances[:4]}
