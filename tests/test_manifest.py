"""Reading survey manifests, participants and speaker turns; rejecting malformed or escaping input."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from _warehouse_data import PARTICIPANTS, SESSIONS, write_survey
from ser_pipeline.errors import ManifestError
from ser_pipeline.archive.manifest import list_surveys, read_archive, read_rttm, read_survey, read_turns_csv

HEADER = "session_id,survey_id,audio_file,recorded_at,moderator,market,location,participants,metadata\n"


def _folder(tmp_path: Path, manifest: str, participants: str = "participant_id,age_band,gender,market,segment\np1,18-24,female,DE,loyal\np2,25-34,male,UK,new\n") -> Path:
    folder = tmp_path / "archive" / "S9"
    folder.mkdir(parents=True)
    (folder / "manifest.csv").write_text(manifest)
    (folder / "participants.csv").write_text(participants)
    (folder / "a.wav").write_bytes(b"RIFF")
    return folder


def _row(**overrides) -> str:
    row = {"session_id": "a", "survey_id": "S9", "audio_file": "a.wav", "recorded_at": "2026-03-02T10:00:00+01:00",
           "moderator": "m", "market": "DE", "location": "Berlin", "participants": "p1;p2", "metadata": '"{""k"": 1}"'}
    row.update(overrides)
    return HEADER + ",".join(row.values()) + "\n"


def test_reads_a_survey_with_turns_csv_and_rttm(tmp_path):
    survey = read_survey(write_survey(tmp_path / "archive", "S1").as_uri())
    assert survey.survey_id == "S1"
    assert [s.session_id for s in survey.sessions] == [s[0] for s in SESSIONS]
    assert [p.participant_id for p in survey.participants] == [p[0] for p in PARTICIPANTS]
    assert survey.participant("chen.w").segment == "loyal"
    s1, s3 = survey.sessions[0], survey.sessions[2]
    assert s1.recorded_at.utcoffset() == timedelta(hours=1) and s1.recorded_at.hour == 10
    assert s1.metadata["product"] == "cola"
    assert s1.participant_ids == ("anna.k", "bob.m")
    assert s1.audio_url.endswith("/S1/s1.wav") and s1.audio_url.startswith("file://")
    assert s1.turns_source == "turns.csv" and len(s1.turns) == 12
    assert s1.turns[0].question == "price" and s1.turns[3].question is None
    assert s3.turns_source == "rttm" and len(s3.turns) == 12
    assert all(t.question is None for t in s3.turns)
    assert [t.participant_id for t in s3.turns[:3]] == ["anna.k", "bob.m", "eve.r"]
    assert all(b.start_s >= a.end_s for a, b in zip(s3.turns, s3.turns[1:]))


def test_json_manifest_and_participants(tmp_path):
    folder = tmp_path / "archive" / "J1"
    folder.mkdir(parents=True)
    (folder / "x.flac").write_bytes(b"fLaC")
    (folder / "manifest.json").write_text(json.dumps({"sessions": [{
        "session_id": "x", "survey_id": "J1", "audio_file": "x.flac", "recorded_at": "2026-01-05T09:00:00Z",
        "moderator": None, "market": "US", "location": "NYC", "participants": ["u1"], "metadata": {"wave": 2}}]}))
    (folder / "participants.json").write_text(json.dumps([{"participant_id": "u1", "age_band": "65+", "gender": "x", "market": "US", "segment": "new"}]))
    (folder / "x.turns.csv").write_text("start_s,end_s,participant_id\n0.5,2.0,u1\n")
    survey = read_survey(str(folder))
    session = survey.sessions[0]
    assert session.metadata == {"wave": 2} and session.participant_ids == ("u1",) and session.moderator is None
    assert session.recorded_at.utcoffset() == timedelta(0)
    assert session.turns[0].start_s == 0.5 and session.turns[0].question is None


def _minimal_survey(tmp_path: Path, manifest_name: str, manifest: str) -> Path:
    """The documented minimal manifest (five required columns) beside a real WAV."""
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "archive" / "MIN"
    folder.mkdir(parents=True)
    sf.write(folder / "m1.wav", np.zeros(1600, np.float32), 16_000, subtype="PCM_16")
    (folder / manifest_name).write_text(manifest)
    (folder / "participants.csv").write_text("participant_id\np1\np2\n")
    return folder


@pytest.mark.parametrize("manifest_name, manifest", [
    ("manifest.csv", "session_id,survey_id,audio_file,recorded_at,participants\nm1,MIN,m1.wav,2026-03-02T10:00:00+01:00,p1;p2\n"),
    ("manifest.json", json.dumps([{"session_id": "m1", "survey_id": "MIN", "audio_file": "m1.wav",
                                   "recorded_at": "2026-03-02T10:00:00+01:00", "participants": ["p1", "p2"]}])),
])
def test_the_documented_minimal_manifest_reads_and_validates(tmp_path, manifest_name, manifest):
    import pandas as pd

    from ser_pipeline.archive.manifest import REQUIRED_MANIFEST_COLUMNS
    from ser_pipeline.validation import validate_manifest

    folder = _minimal_survey(tmp_path, manifest_name, manifest)
    [session] = read_survey(folder.as_uri()).sessions
    assert (session.session_id, session.participant_ids) == ("m1", ("p1", "p2"))
    assert session.moderator is session.market is session.location is None and session.metadata == {}
    assert session.recorded_at.utcoffset() == timedelta(hours=1) and session.audio_url.endswith("/MIN/m1.wav")
    # the suite runs on the manifest's rows as the nightly run reads them (a JSON list of ids stays a list)
    if manifest_name == "manifest.csv":
        frame = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False).replace({"": None})
    else:
        frame = pd.DataFrame(json.loads(manifest)).astype(object)
    assert tuple(frame.columns) == REQUIRED_MANIFEST_COLUMNS
    result = validate_manifest(frame, folder.as_uri())
    assert result.success, result.summary()


def test_turns_csv_wins_over_rttm(tmp_path):
    folder = _folder(tmp_path, _row())
    (folder / "a.turns.csv").write_text("start_s,end_s,participant_id,question\n1,2,p1,intro\n")
    (folder / "a.rttm").write_text("SPEAKER a 1 0.00 5.00 <NA> <NA> p2 <NA> <NA>\n")
    session = read_survey(str(folder)).sessions[0]
    assert session.turns_source == "turns.csv" and [t.participant_id for t in session.turns] == ["p1"]
    (folder / "a.turns.csv").unlink()
    session = read_survey(str(folder)).sessions[0]
    assert session.turns_source == "rttm" and (session.turns[0].start_s, session.turns[0].end_s) == (0.0, 5.0)
    (folder / "a.rttm").unlink()
    assert read_survey(str(folder)).sessions[0].turns == ()


@pytest.mark.parametrize("manifest, message", [
    (HEADER.replace(",recorded_at", "") + "a,S9,a.wav,m,DE,B,p1,{}\n", "missing columns ['recorded_at']"),
    (_row() + _row().splitlines()[1] + "\n", "duplicate session_id 'a'"),
    (_row(recorded_at="yesterday"), "not an ISO 8601 timestamp"),
    (_row(recorded_at="2026-03-02T10:00:00"), "no UTC offset"),
    (_row(audio_file="../S8/a.wav"), "leaves the archive root"),
    (_row(audio_file="sub/../../x.wav"), "leaves the archive root"),
    (_row(audio_file="/etc/passwd"), "absolute"),
    (_row(audio_file="s3://other-bucket/a.wav"), "absolute"),
    (_row(participants="p1;p7"), "['p7'] are not in participants.csv"),
    (_row(survey_id="S8"), "differs from the folder name"),
    (_row(metadata="[1]"), "must be a JSON object"),
    (_row(session_id="a/b"), "may hold only"),
])
def test_malformed_manifests_raise_manifest_error(tmp_path, manifest, message):
    folder = _folder(tmp_path, manifest)
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")) as info:
        read_survey(str(folder))
    assert info.value.source.endswith("manifest.csv")


def test_participant_errors(tmp_path):
    folder = _folder(tmp_path, _row(), "participant_id,segment\np1,a\np1,b\n")
    with pytest.raises(ManifestError, match="duplicate participant_id 'p1'") as info:
        read_survey(str(folder))
    assert info.value.source.endswith("participants.csv")
    (folder / "participants.csv").unlink()
    with pytest.raises(ManifestError, match="no participants.csv or participants.json"):
        read_survey(str(folder))


def test_symlink_escaping_the_survey_folder_is_rejected(tmp_path):
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF")
    folder = _folder(tmp_path, _row(audio_file="link.wav"))
    os.symlink(outside, folder / "link.wav")
    with pytest.raises(ManifestError, match="resolves outside the survey folder"):
        read_survey(str(folder))
    os.symlink(folder / "a.wav", folder / "inside.wav")
    folder.joinpath("manifest.csv").write_text(_row(audio_file="inside.wav"))
    assert read_survey(str(folder)).sessions[0].audio_url.endswith("inside.wav")


@pytest.mark.parametrize("turns, message", [
    ("start_s,participant_id\n1,p1\n", "missing columns ['end_s']"),
    ("start_s,end_s,participant_id\n2,1,p1\n", "end_s 1.0 is not after start_s 2.0"),
    ("start_s,end_s,participant_id\n-1,1,p1\n", "negative"),
    ("start_s,end_s,participant_id\nabc,1,p1\n", "'abc' is not a number"),
    ("start_s,end_s,participant_id\n1,2,SPEAKER_00\n", "not participants of session a"),
])
def test_bad_turns_raise_manifest_error(tmp_path, turns, message):
    folder = _folder(tmp_path, _row())
    (folder / "a.turns.csv").write_text(turns)
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        read_survey(str(folder))
    assert info.value.source.endswith("a.turns.csv")


def test_rttm_parsing(tmp_path):
    path = tmp_path / "x.rttm"
    path.write_text(";; comment\nSPKR-INFO x 1 <NA> <NA> <NA> unknown p1 <NA> <NA>\n"
                    "SPEAKER x 1 3.50 1.25 <NA> <NA> p2 <NA> <NA>\nSPEAKER x 1 0.00 2.00 <NA> <NA> p1 <NA> <NA>\n")
    turns = read_rttm(str(path))
    assert [(t.start_s, t.end_s, t.participant_id) for t in turns] == [(0.0, 2.0, "p1"), (3.5, 4.75, "p2")]
    path.write_text("SPEAKER x 1 0.0\n")
    with pytest.raises(ManifestError, match="at least 8 fields"):
        read_rttm(str(path))
    with pytest.raises(ManifestError, match="file not found"):
        read_turns_csv(str(tmp_path / "missing.turns.csv"))


def test_archive_discovery_ignores_underscore_and_dot_folders(tmp_path):
    root = tmp_path / "archive"
    write_survey(root, "S1")
    write_survey(root, "S2", session_prefix="b-")
    write_survey(root, "_scratch", session_prefix="c-")
    (root / ".cache").mkdir()
    (root / "empty").mkdir()
    assert [u.rsplit("/", 1)[1] for u in list_surveys(root.as_uri())] == ["S1", "S2"]
    assert [s.survey_id for s in read_archive(str(root))] == ["S1", "S2"]
    assert list_surveys((tmp_path / "none").as_uri()) == []


def test_memory_filesystem_archive(tmp_path):
    """Any fsspec URL works; memory:// is a real fsspec filesystem without a network."""
    import fsspec

    local = write_survey(tmp_path / "archive", "S1")
    fs = fsspec.filesystem("memory")
    root = f"/ser-test-{tmp_path.name}/archive/S1"
    for path in local.iterdir():
        fs.pipe_file(f"{root}/{path.name}", path.read_bytes())
    try:
        survey = read_survey(f"memory://{root}")
        assert [len(s.turns) for s in survey.sessions] == [12] * len(SESSIONS)
        assert survey.sessions[0].audio_url == f"memory://{root}/s1.wav"
        assert [u.rsplit("/", 1)[1] for u in list_surveys(f"memory://{root.rsplit('/', 1)[0]}")] == ["S1"]
    finally:
        fs.rm(root.rsplit("/", 2)[0], recursive=True)


@pytest.mark.s3
def test_s3_archive(tmp_path, s3_bucket):
    import fsspec

    from ser_pipeline.settings import get_settings

    local = write_survey(tmp_path / "archive", "S1")
    fs = fsspec.filesystem("s3", **get_settings().storage_options(s3_bucket))
    for path in local.iterdir():
        fs.pipe_file(f"{s3_bucket}/archive/S1/{path.name}", path.read_bytes())
    fs.pipe_file(f"{s3_bucket}/archive/_tmp/manifest.csv", b"ignored")
    [survey] = read_archive(f"{s3_bucket}/archive")
    assert survey.survey_id == "S1" and survey.sessions[2].turns_source == "rttm"
    assert survey.sessions[0].audio_url == f"{s3_bucket}/archive/S1/s1.wav"
    folder = f"{s3_bucket}/archive/S1"
    fs.pipe_file(f"{folder}/manifest.csv", (local / "manifest.csv").read_text().replace("s1.wav", "../S0/s1.wav").encode())
    with pytest.raises(ManifestError, match="leaves the archive root"):
        read_survey(folder)


@pytest.mark.slow
def test_a_minimal_manifest_and_an_init_skeleton_label_through_the_nightly_run(tmp_path, monkeypatch, tiny_champion, settings):
    """Item 1 and 3 of issue 13 end to end: the documented five-column manifest, and the one
    ``manifest_skeleton`` writes for a folder of bare recordings, are labelled, not quarantined."""
    from support.messy import speech, wav_bytes

    from ser_pipeline.archive.skeleton import manifest_skeleton, write_manifest_skeleton
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", tiny_champion[0])
    settings = get_settings()
    archive = tmp_path / "archive"
    (archive / "MIN").mkdir(parents=True)
    (archive / "MIN" / "m1.wav").write_bytes(wav_bytes(speech(seed=1)))
    (archive / "MIN" / "manifest.csv").write_text("session_id,survey_id,audio_file,recorded_at,participants\n"
                                                  "m1,MIN,m1.wav,2026-03-02T10:00:00+01:00,p1\n")
    (archive / "MIN" / "participants.csv").write_text("participant_id\np1\n")
    (archive / "BARE").mkdir()
    (archive / "BARE" / "Gruppe 1.wav").write_bytes(wav_bytes(speech(seed=2)))
    write_manifest_skeleton(manifest_skeleton(str(archive / "BARE")))

    report = run_nightly(archive.as_uri(), settings=settings)
    assert report.status == "completed" and not report.quarantined, nightly_markdown(report)
    assert report.surveys == 2 and report.sessions == 2 and report.predictions_loaded > 0
    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        labelled = con.execute("SELECT DISTINCT session_id FROM utterances JOIN predictions USING (utterance_id) ORDER BY 1").fetchall()
    finally:
        con.close()
    assert labelled == [("Gruppe_1",), ("m1",)]


def test_a_session_s_language_is_a_two_letter_code_or_blank(tmp_path):
    header = HEADER.replace("location,", "location,language,")
    row = "a,S9,a.wav,2026-03-02T10:00:00+01:00,m,DE,Berlin,{language},p1;p2,\n"
    german = read_survey(_folder(tmp_path / "de", header + row.format(language="DE")).as_uri())
    assert german.sessions[0].language == "de"
    blank = read_survey(_folder(tmp_path / "blank", header + row.format(language="")).as_uri())
    assert blank.sessions[0].language is None
    assert read_survey(_folder(tmp_path / "none", _row()).as_uri()).sessions[0].language is None
    with pytest.raises(ManifestError, match="language 'German' is not a two-letter ISO 639-1 code"):
        read_survey(_folder(tmp_path / "bad", header + row.format(language="German")).as_uri())
