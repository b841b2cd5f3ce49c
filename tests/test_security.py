"""Security and privacy through the real pipeline: manifest paths stay inside the archive,
analysts' SQL can neither write nor reach files, credentials never show up anywhere a person
or a log could read them, and participants reach the warehouse only as keyed pseudonyms."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from _warehouse_data import Loaded, loaded, _loaded_template  # noqa: F401 (fixture)
from support.messy import speech, wav_bytes, write_survey

SECRET_KEY = "s3-secret-key-do-not-log-7d1f"
PSEUDONYM_KEY = "pseudonym-key-do-not-log-91ac"


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_champion):
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", tiny_champion[0])
    monkeypatch.setenv("SER_PSEUDONYM_KEY", PSEUDONYM_KEY)
    return tmp_path


def _all_text(db: Path) -> str:
    """Every value of every table of the warehouse, as one string to grep."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        return "\n".join(f"{t}: {con.execute(f'SELECT * FROM {t}').fetchall()!r}" for t in tables)
    finally:
        con.close()


@pytest.mark.slow
def test_manifest_paths_cannot_leave_the_archive_root(env, settings):
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path = env
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.wav"
    secret.write_bytes(wav_bytes(speech(seed=9)))
    archive = tmp_path / "archive"
    write_survey(archive, "OK", {"OK-1": ("fine.wav", wav_bytes(speech(seed=1)))})
    write_survey(archive, "DOTDOT", {"DOTDOT-1": ("../../outside/secret.wav", None)})
    write_survey(archive, "ABSOLUTE", {"ABSOLUTE-1": (str(secret), None)})
    write_survey(archive, "URL", {"URL-1": (secret.as_uri(), None)})
    link = write_survey(archive, "SYMLINK", {"SYMLINK-1": ("inside.wav", None)}) / "inside.wav"
    link.symlink_to(secret)

    report = run_nightly(archive.as_uri(), settings=settings)
    assert report.error is None
    db = tmp_path / "warehouse.duckdb"
    reasons = dict(duckdb.connect(str(db), read_only=True).execute("SELECT source, reason FROM quarantine").fetchall())
    # Each bad row sets aside its own session (named by its manifest row: its path names
    # nothing inside the survey); OK is labelled.
    by_survey = {source.split("/archive/")[1].split("/")[0]: reason for source, reason in reasons.items()}
    assert set(by_survey) == {"DOTDOT", "ABSOLUTE", "URL", "SYMLINK"}, reasons
    assert all(source.endswith("/manifest.csv row 1") for source in reasons), reasons
    assert "leaves the archive root" in by_survey["DOTDOT"]
    assert "is absolute" in by_survey["ABSOLUTE"]
    # A URL is caught one step earlier, by the manifest suite: no such file inside the survey.
    assert "is absolute" in by_survey["URL"] or "audio_file_exists" in by_survey["URL"]
    assert "resolves outside the survey folder" in by_survey["SYMLINK"]
    # Nothing of the outside file was read into the warehouse: only OK's session is there.
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT DISTINCT session_id FROM utterances").fetchall() == [("OK-1",)]
    assert con.execute("SELECT count(*) FROM sessions WHERE audio_url LIKE '%outside%'").fetchone() == (0,)
    con.close()


RUNNER = CliRunner()


def _ser(*args: str):
    from ser_pipeline.cli import app

    return RUNNER.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("statement", [
    "COPY (SELECT * FROM participants) TO '{out}'",
    "SELECT * FROM read_csv('{secret}')",
    "SELECT * FROM read_text('{secret}')",
    "ATTACH '{out}.duckdb' AS exfil",
    "INSTALL httpfs",
    "SET enable_external_access = true; COPY (SELECT 1) TO '{out}'",
    "COPY (SELECT text FROM v_quotes) TO '{out}'",
])
def test_analysts_sql_can_neither_write_nor_reach_files(loaded: Loaded, tmp_path, statement):
    secret = tmp_path / "secret.txt"
    secret.write_text("participant_id\nAnna Schmidt\n")
    out = tmp_path / "leak.csv"
    result = _ser("sql", statement.format(out=out, secret=secret), "-w", str(loaded.path))
    assert result.exit_code == 1, result.output
    assert not out.exists() and not Path(f"{out}.duckdb").exists()
    assert "Anna Schmidt" not in result.output


@pytest.mark.parametrize("statement", [
    "DELETE FROM transcripts",
    "UPDATE transcripts SET text = 'invented words' WHERE empty_reason IS NOT NULL",
    "DROP TABLE transcripts",
    "INSERT INTO transcripts (utterance_id, model, text) SELECT utterance_id, 'fake', 'invented' FROM utterances",
    "CREATE OR REPLACE VIEW v_quotes AS SELECT 'invented' AS text",
    "DROP VIEW v_transcripts",
    "CREATE OR REPLACE MACRO words(text) AS ['invented']",
    "SELECT * FROM v_quotes; DELETE FROM transcripts",
])
def test_analysts_sql_cannot_change_transcripts_or_their_views(loaded: Loaded, statement, settings):
    """The transcripts table, its views and macros are as read-only to ``ser sql`` as the rest."""
    from ser_pipeline import warehouse

    check = ("SELECT (SELECT count(*) FROM transcripts) AS n, (SELECT count(*) FROM v_quotes WHERE is_empty) AS empty, "
             "(SELECT list(text ORDER BY utterance_id) FROM v_quotes) AS texts, words('an awful cap') AS w")
    before = warehouse.run_query(loaded.path, check, settings=settings).iloc[0].to_dict()
    result = _ser("sql", statement, "-w", str(loaded.path))
    assert result.exit_code == 1 and "read-only" in result.stderr, result.output
    after = warehouse.run_query(loaded.path, check, settings=settings).iloc[0].to_dict()
    assert {k: str(v) for k, v in after.items()} == {k: str(v) for k, v in before.items()}
    assert before["n"] == len(loaded.transcripts) + 1 and before["empty"] == 1 and list(before["w"]) == ["awful", "cap"]


HOSTILE = ["x'; DROP TABLE predictions; --", "' OR '1'='1", "1; COPY predictions TO '/tmp/x.csv'", "$(rm -rf /)"]


def test_every_named_query_binds_every_parameter(loaded: Loaded):
    """Every parameter of every named query given injection strings: the query answers
    (nothing matches, or a clear type error or refused choice, exit 1), and every table is
    intact afterwards."""
    from ser_pipeline import warehouse

    before = _all_text(loaded.path)
    tried = 0
    for query in warehouse.named_queries().values():
        if not query.params:
            continue
        for hostile in HOSTILE:
            params = [arg for name, _default in query.params for arg in ("-p", f"{name}={hostile}")]
            result = _ser("query", query.name, *params, "-f", "json", "-w", str(loaded.path))
            tried += 1
            assert result.exit_code in (0, 1), result.output
            if result.exit_code == 0:
                assert not any(hostile in json.dumps(r) for r in json.loads(result.stdout))
            else:
                assert any(m in result.output for m in ("Conversion Error", "Could not convert", "must be")), result.output
    assert tried >= 8
    assert _all_text(loaded.path) == before


@pytest.mark.slow
@pytest.mark.s3
def test_credentials_never_appear_in_logs_artifacts_tables_or_errors(env, monkeypatch, caplog, capfd, settings):
    """A run on S3 with a corrupt recording, a broken manifest and a missing model, every log
    record at DEBUG, the markdown artifact, every warehouse table, the errors and ``ser config``:
    none holds the S3 secret key or the pseudonym key."""
    from ser_pipeline import storage
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
    from ser_pipeline.settings import get_settings
    from support.s3 import moto_server, reset_moto, use_endpoint

    tmp_path = env
    caplog.set_level(logging.DEBUG)
    with moto_server() as endpoint:
        reset_moto(endpoint)  # moto's state is per process: forget other tests' buckets
        use_endpoint(monkeypatch, endpoint)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.setenv("SER_S3_ACCESS_KEY_ID", "testing-key-id")
        monkeypatch.setenv("SER_S3_SECRET_ACCESS_KEY", SECRET_KEY)
        settings = get_settings()
        fs, _ = storage.filesystem("s3://archive")
        fs.mkdir("archive")
        local = tmp_path / "local-archive"
        write_survey(local, "S3OK", {"S3OK-1": ("a.wav", wav_bytes(speech(seed=1))), "S3OK-2": ("b.wav", b"RIFF\x00\x00")})
        write_survey(local, "S3BAD", {"S3BAD-1": ("gone.wav", None)})
        fs.put(str(local) + "/", "archive/", recursive=True)

        report = run_nightly("s3://archive", settings=settings)
        texts = [nightly_markdown(report), report.error or "", json.dumps(report.summary())]
        monkeypatch.setenv("SER_REGISTRY_URL", "s3://archive/no-registry")
        settings = get_settings()
        failed = run_nightly("s3://archive", settings=settings)  # no champion there: a failed run with an error message
        assert failed.error
        texts += [nightly_markdown(failed), failed.error]
        try:
            storage.read_bytes("s3://no-such-bucket/x.wav")
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            texts.append(f"{type(exc).__name__}: {exc}")
        texts.append(_ser("config", "--json").output)
        texts.append(repr(get_settings()))

    assert report.status == "partial"  # S3BAD's session names a missing file, S3OK-2 is not audio
    assert {q.stage for q in report.quarantined} == {"session", "audio"}
    texts.append(_all_text(tmp_path / "warehouse.duckdb"))
    texts += [r.getMessage() for r in caplog.records]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    everything = "\n".join(texts)
    assert len(caplog.records) > 10 and "S3BAD" in everything  # we did capture the run
    assert SECRET_KEY not in everything
    assert PSEUDONYM_KEY not in everything


@pytest.mark.slow
def test_participants_are_stored_only_as_keyed_pseudonyms(env, settings):
    from ser_pipeline import synthetic as synth
    from ser_pipeline.runs.nightly import run_nightly
    from ser_pipeline.warehouse import pseudonymise

    tmp_path = env
    url = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(url, n_surveys=1, sessions_per_survey=2, participants_per_session=3,
                                   utterances_per_session=3, sidecar="csv", seed=4)
    assert run_nightly(url, settings=settings).status == "completed"
    db = tmp_path / "warehouse.duckdb"
    text = _all_text(db)
    import pandas as pd

    raw_ids = set(pd.read_csv(tmp_path / "archive" / "SV01" / "participants.csv")["participant_id"])
    assert set(truth.participant_id) <= raw_ids
    assert not [pid for pid in raw_ids if pid in text]
    con = duckdb.connect(str(db), read_only=True)
    stored = {k for (k,) in con.execute("SELECT participant_key FROM participants").fetchall()}
    spoken = {k for (k,) in con.execute("SELECT DISTINCT participant_key FROM utterances").fetchall()}
    con.close()
    assert stored == {pseudonymise(pid, PSEUDONYM_KEY) for pid in raw_ids} and spoken <= stored
    # Keyed: without the key, hashing a guessed id does not find it.
    import hashlib

    assert not stored & {hashlib.sha256(pid.encode()).hexdigest() for pid in raw_ids}
    assert not stored & {pseudonymise(pid, "another key") for pid in raw_ids}
