"""``ser sql``, ``ser query``, ``ser warehouse`` and ``ser report`` through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from _warehouse_data import Loaded, loaded, _loaded_template  # noqa: F401 (fixture)
from ser_pipeline import warehouse
from ser_pipeline.cli import app

runner = CliRunner()


def ser(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_migrate_and_status(tmp_path):
    path = str(tmp_path / "new.duckdb")
    first = ser("warehouse", "migrate", "-w", path, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["applied"] == [m.version for m in warehouse.migrations()]
    again = ser("warehouse", "migrate", "-w", path)
    assert again.exit_code == 0 and "already up to date" in again.stdout
    status = ser("warehouse", "status", "-w", path, "--json")
    info = json.loads(status.stdout)
    assert info["schema_version"] == len(warehouse.migrations()) and info["rows"]["predictions"] == 0 and info["current_model"] is None
    missing = ser("warehouse", "status", "-w", str(tmp_path / "none.duckdb"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_status_of_a_loaded_warehouse(loaded: Loaded):
    result = ser("warehouse", "status", "-w", str(loaded.path))
    assert result.exit_code == 0
    assert "current model   v2 (latest)" in result.stdout
    assert f"{2 * len(loaded.utterances):,}" in result.stdout


def test_sql_formats(loaded: Loaded):
    path = str(loaded.path)
    table = ser("sql", "SELECT session_id, market FROM sessions ORDER BY session_id", "-w", path)
    assert table.exit_code == 0
    assert table.stdout.split()[:4] == ["session_id", "market", "s1", "DE"]
    csv = ser("sql", "SELECT session_id, market FROM sessions WHERE market = $m ORDER BY 1", "-p", "m=UK", "-f", "csv", "-w", path)
    assert pd.read_csv(io.StringIO(csv.stdout)).to_dict("records") == [{"session_id": "s2", "market": "UK"}, {"session_id": "s5", "market": "UK"}]
    js = ser("sql", "SELECT count(*) AS n FROM utterances", "--format", "json", "-w", path)
    assert json.loads(js.stdout) == [{"n": len(loaded.utterances)}]
    empty = ser("sql", "SELECT * FROM sessions WHERE 1 = 0", "-w", path)
    assert empty.exit_code == 0 and "no rows" in empty.stdout


@pytest.mark.parametrize("hostile", ["x'; DROP TABLE sessions; --", "' OR '1'='1", "s1' UNION SELECT * FROM participants --"])
def test_parameters_are_bound_not_formatted(loaded: Loaded, hostile, settings):
    path = str(loaded.path)
    result = ser("sql", "SELECT session_id FROM sessions WHERE session_id = $s", "-p", f"s={hostile}", "-f", "json", "-w", path)
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    query = ser("query", "session_arc", "-p", f"session={hostile}", "-f", "json", "-w", path)
    assert query.exit_code == 0 and json.loads(query.stdout) == []
    assert warehouse.run_query(loaded.path, "SELECT count(*) AS n FROM sessions", settings=settings)["n"].iloc[0] == len(loaded.survey.sessions)


@pytest.mark.parametrize("statement", [
    "DROP TABLE sessions",
    "DELETE FROM predictions",
    "INSERT INTO surveys VALUES ('x', 'y', 0, 0, now())",
    "SELECT 1; DROP TABLE sessions",
    "ATTACH ':memory:' AS scratch; CREATE TABLE scratch.t AS SELECT 1; DROP TABLE main.sessions",
])
def test_read_only_commands_cannot_write(loaded: Loaded, statement, settings):
    result = ser("sql", statement, "-w", str(loaded.path))
    assert result.exit_code == 1
    assert "read-only" in result.stderr
    counts = warehouse.run_query(loaded.path, "SELECT (SELECT count(*) FROM sessions) AS s, (SELECT count(*) FROM predictions) AS p", settings=settings)
    assert (counts["s"].iloc[0], counts["p"].iloc[0]) == (len(loaded.survey.sessions), 2 * len(loaded.utterances))


def test_query_list_and_run(loaded: Loaded, settings):
    listing = ser("query", "--list")
    assert listing.exit_code == 0
    for query in warehouse.named_queries().values():
        assert query.name in listing.stdout and query.question in listing.stdout
    as_json = json.loads(ser("query", "--list", "-f", "json").stdout)
    assert {q["name"] for q in as_json} == set(warehouse.named_queries())

    result = ser("query", "emotion_share_by_week", "-p", "survey=S1", "-f", "csv", "-w", str(loaded.path))
    assert result.exit_code == 0
    got = pd.read_csv(io.StringIO(result.stdout))
    want = warehouse.run_named_query(loaded.path, "emotion_share_by_week", {"survey": "S1"}, settings=settings)
    assert got["label"].tolist() == want["label"].tolist()
    assert got["n_utterances"].tolist() == want["n_utterances"].tolist()


def test_query_model_option_reports_that_version(loaded: Loaded):
    arc = ser("query", "session_arc", "-p", "session=s1", "--model", "v1", "-f", "json", "-w", str(loaded.path))
    labels = [row["label"] for row in json.loads(arc.stdout)]
    s1 = loaded.expected("v1")
    assert labels == s1[s1["session_id"] == "s1"].sort_values("utterance_index")["label"].tolist()


@pytest.mark.parametrize("args, message", [
    (["query", "emotion_share_by_week"], "needs --param survey"),
    (["query", "no_such_query"], "no query named"),
    (["query"], "--list"),
    (["query", "session_arc", "-p", "session"], "NAME=VALUE"),
    (["sql", "SELECT 1", "-f", "xml"], "--format"),
])
def test_usage_errors_exit_2(loaded: Loaded, args, message):
    result = ser(*args, "-w", str(loaded.path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_sql_error_exits_1(loaded: Loaded):
    result = ser("sql", "SELECT * FROM no_such_table", "-w", str(loaded.path))
    assert result.exit_code == 1 and "no_such_table" in result.stderr


def test_report_command(loaded: Loaded, tmp_path):
    result = ser("report", "--survey", "S1", "--out", str(tmp_path / "out"), "-w", str(loaded.path))
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "S1.html").read_text()
    assert result.stdout.strip().endswith("S1.html") and "data:image/png;base64," in page
    unknown = ser("report", "--survey", "NOPE", "--out", str(tmp_path / "out"), "-w", str(loaded.path))
    assert unknown.exit_code == 2 and "not in the warehouse" in unknown.stderr


def test_rotate_key_command(loaded: Loaded, tmp_path, monkeypatch, settings):
    from _warehouse_data import KEY, PARTICIPANTS

    archive = str(Path(loaded.survey.url.removeprefix("file://")).parent)
    missing = ser("warehouse", "rotate-key", "--new-key-env", "SER_TEST_NEW_KEY", "--archive", archive, "-w", str(loaded.path))
    assert missing.exit_code == 2 and "SER_TEST_NEW_KEY" in missing.stderr
    monkeypatch.setenv("SER_TEST_NEW_KEY", "rotated-key")
    result = ser("warehouse", "rotate-key", "--new-key-env", "SER_TEST_NEW_KEY", "--archive", archive, "-w", str(loaded.path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"participant_ids_in_archive": len(PARTICIPANTS), "participants_rekeyed": len(PARTICIPANTS)}
    keys = set(warehouse.run_query(loaded.path, "SELECT participant_key FROM utterances", settings=settings)["participant_key"])
    assert keys == {warehouse.pseudonymise(p[0], "rotated-key") for p in PARTICIPANTS}
    assert "rotated-key" not in result.stdout and KEY not in result.stdout


def test_quote_queries_through_the_cli(loaded: Loaded):
    path = str(loaded.path)
    listing = ser("query", "--list")
    assert "params: survey, label=, question=, limit=50" in listing.stdout  # label= : optional, empty means all
    result = ser("query", "quotes", "-p", "survey=S1", "-p", "label=negative", "-p", "question=price", "-f", "json", "-w", path)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(r["question"] == "price" and r["label"] in {"sad", "angry", "fearful", "disgust"} and r["text"] for r in rows)
    assert any("[EMAIL]" in r["text"] and r["n_redacted"] == 1 for r in rows)
    table = ser("query", "search_transcripts", "-p", "pattern=expensive", "-w", path)
    assert table.exit_code == 0 and "Too EXPENSIVE, not worth it" in table.stdout
    bad = ser("query", "search_transcripts", "-p", "pattern=x", "-p", "mode=glob", "-w", path)
    assert bad.exit_code == 1 and "mode must be ilike or regex, not glob" in bad.stderr
    status = json.loads(ser("warehouse", "status", "-w", path, "--json").stdout)
    assert status["rows"]["transcripts"] == len(loaded.transcripts) + 1  # the old model's transcript of one utterance too
