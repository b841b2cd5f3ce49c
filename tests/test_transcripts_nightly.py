"""Transcripts through the product's front door: focus-group sessions assembled from real RAVDESS
clips (each says "Kids are talking by the door" or "Dogs are sitting by the door"), labelled by
``ser label`` into a fresh DuckDB file. With transcription on, nearly every utterance is written
down, close to what was said, once however often the run is repeated; with it off, not a word
of what was said is anywhere: warehouse, feature store, report or output."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ser_pipeline.cli import app
from support.tiny_model import shared_champion

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SAID = ("talking", "sitting", "kids", "dogs")  # words of both RAVDESS sentences


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, ravdess_dir, encoder_home):
    """A clean (noise floor only) session archive of 24 clips of four actors, 3 sessions of 8."""
    from ser_pipeline.evaluation.sessions import assemble_session_archive
    from ser_pipeline.settings import Settings
    from ser_pipeline.training.corpora import read_ravdess

    clips = [c for c in read_ravdess(str(ravdess_dir)) if c.speaker in {f"ravdess:{a:02d}" for a in (1, 2, 3, 4)}]
    clips = clips[::10][:24]
    root = tmp_path_factory.mktemp("transcribed-sessions")
    made = assemble_session_archive(clips, (root / "archive").as_uri(), speakers_per_session=3, utterances_per_session=8,
                                    condition="clean", settings=Settings(home=encoder_home))
    return made, clips


def _label(monkeypatch, tmp_path, archive_url, registry_url, transcribe: bool, report: Path):
    monkeypatch.setenv("SER_ARCHIVE_URL", archive_url)
    monkeypatch.setenv("SER_REGISTRY_URL", registry_url)
    monkeypatch.setenv("SER_TRANSCRIBE", str(transcribe).lower())
    return CliRunner().invoke(app, ["label", "--json", "--report", str(report)])


def _text_columns_holding(path: Path, words) -> list[str]:
    """``table.column`` of every text column of the warehouse in which one of ``words`` occurs."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                              "WHERE data_type IN ('VARCHAR', 'JSON') AND table_schema = 'main' "
                              "AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE')").fetchall()
        return [f"{t}.{c}" for t, c in columns for w in words
                if con.execute(f'SELECT count(*) FROM "{t}" WHERE lower(CAST("{c}" AS VARCHAR)) LIKE ?', [f"%{w}%"]).fetchone()[0]]
    finally:
        con.close()


def test_ser_label_writes_down_what_was_said_once(sessions, tmp_path, tmp_path_factory, monkeypatch, settings):
    from ser_pipeline.evaluation.transcripts import score_transcripts

    made, clips = sessions
    registry_url, _ = shared_champion(tmp_path_factory)
    result = _label(monkeypatch, tmp_path, made.archive_url, registry_url, True, tmp_path / "report.md")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["predictions_loaded"] == len(clips) and summary["transcripts_loaded"] == len(clips)

    warehouse = tmp_path / "warehouse.duckdb"
    scores = score_transcripts(warehouse, made.truth, settings=settings)
    assert scores["n_utterances"] == len(clips) and scores["n_clips_scored"] == len(clips)
    assert scores["coverage"] >= 0.95, scores
    assert scores["wer"] <= 0.12, scores
    con = duckdb.connect(str(warehouse), read_only=True)
    languages = con.execute("SELECT DISTINCT language, language_source FROM transcripts").fetchall()
    con.close()
    assert languages == [("en", "detected")]
    assert "## Transcripts" in (tmp_path / "report.md").read_text()

    again = _label(monkeypatch, tmp_path, made.archive_url, registry_url, True, tmp_path / "again.md")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["transcripts_loaded"] == 0
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*), count(DISTINCT utterance_id) FROM transcripts").fetchone() == (len(clips), len(clips))
    con.close()


def test_with_transcription_off_no_word_said_is_stored_or_shown(sessions, tmp_path, tmp_path_factory, monkeypatch):
    made, clips = sessions
    registry_url, _ = shared_champion(tmp_path_factory)
    result = _label(monkeypatch, tmp_path, made.archive_url, registry_url, False, tmp_path / "report.md")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["predictions_loaded"] == len(clips)

    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM transcripts").fetchone()[0] == 0
    con.close()
    assert _text_columns_holding(warehouse, SAID) == []
    report = (tmp_path / "report.md").read_text()
    assert "Transcription is off" in report
    outputs = [result.output, report]  # the parquet files' strings are plain bytes
    outputs += [p.read_bytes().decode("latin-1") for p in (tmp_path / "features").rglob("*") if p.is_file()]
    assert not [w for w in SAID for text in outputs if w in text.lower()]

    from ser_pipeline.warehouse.report import write_survey_report  # the analysts' HTML report too

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        page = write_survey_report(con, made.survey_id, tmp_path / "html")
    finally:
        con.close()
    html = Path(page).read_text().lower()
    assert not [w for w in SAID if w in html]
