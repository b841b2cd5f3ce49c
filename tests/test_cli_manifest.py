"""``ser manifest init``: manifest and participants skeletons from a folder of recordings, valid as
written (the manifest suite and ``read_survey`` on real files), through the real CLI app."""

from __future__ import annotations

import io
import json
import os
import struct
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ser_pipeline.cli import app
from ser_pipeline.errors import ManifestError
from ser_pipeline.archive.manifest import MANIFEST_COLUMNS, PARTICIPANT_COLUMNS, read_survey
from ser_pipeline.archive.skeleton import manifest_skeleton, parse_utc_offset, session_id_from_name, write_manifest_skeleton
from ser_pipeline.validation import validate_manifest

runner = CliRunner()
MTIME = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc).timestamp()  # 10:30 in Berlin (winter), 11:30 at +02:00


def _wav(seconds: float = 0.2, sr: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.linspace(0, 200, int(seconds * sr))).astype(np.float32) * 0.1, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _with_bext(wav: bytes, date: bytes, time_: bytes) -> bytes:
    """``wav`` with a BWF ``bext`` chunk (EBU Tech 3285 v1, 602 bytes) after its ``fmt `` chunk."""
    body = bytearray(602)
    body[0:11] = b"focus group"
    body[320:330], body[330:338] = date, time_
    chunk = b"bext" + struct.pack("<I", len(body)) + bytes(body)
    fmt_end = 12 + 8 + struct.unpack("<I", wav[16:20])[0]
    out = wav[:fmt_end] + chunk + wav[fmt_end:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def _folder(tmp_path: Path, files: dict[str, bytes], name: str = "SV07") -> Path:
    folder = tmp_path / "archive" / name
    folder.mkdir(parents=True)
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
        os.utime(folder / file_name, (MTIME, MTIME))
    return folder


def _manifest_as_the_nightly_run_reads_it(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False).replace({"": None})


def _init(*args: str):
    return runner.invoke(app, ["manifest", "init", *args])


def test_init_writes_a_manifest_that_passes_the_suite_and_reads_back(tmp_path):
    folder = _folder(tmp_path, {"s1.wav": _wav(), "Sitzung 2 (Köln).flac": b"", "b.mp3": b"ID3", "notes.txt": b"x", ".hidden.wav": b""})
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.wav").write_bytes(_wav())
    result = _init(str(folder), "--utc-offset", "+02:00")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "3 sessions" in result.stdout
    assert "3 recorded_at from file modification times" in result.stderr
    manifest = _manifest_as_the_nightly_run_reads_it(folder)
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert list(manifest["session_id"]) == ["Sitzung_2_Koln", "b", "s1"]  # sorted by file name
    assert list(manifest["audio_file"]) == ["Sitzung 2 (Köln).flac", "b.mp3", "s1.wav"]
    assert set(manifest["survey_id"]) == {"SV07"} and set(manifest["recorded_at"]) == {"2026-03-02T11:30:00+02:00"}
    assert list(manifest["participants"]) == ["Sitzung_2_Koln-p1", "b-p1", "s1-p1"]
    assert manifest[["moderator", "market", "location", "metadata"]].isna().all().all()
    participants = pd.read_csv(folder / "participants.csv", dtype=str)
    assert list(participants.columns) == list(PARTICIPANT_COLUMNS) and list(participants["participant_id"]) == list(manifest["participants"])

    checked = validate_manifest(manifest, folder.as_uri())
    assert checked.success, checked.summary()
    survey = read_survey(str(folder))
    assert [s.session_id for s in survey.sessions] == ["Sitzung_2_Koln", "b", "s1"]
    assert survey.sessions[2].recorded_at == datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
    assert survey.sessions[2].recorded_at.utcoffset() == timedelta(hours=2)
    assert survey.sessions[0].participant_ids == ("Sitzung_2_Koln-p1",) and survey.sessions[0].metadata == {}


def test_recorded_at_comes_from_the_bwf_origination_time_when_the_wav_has_one(tmp_path):
    folder = _folder(tmp_path, {"bwf.wav": _with_bext(_wav(), b"2025-11-20", b"14:05:09"),
                                "blank-bext.wav": _with_bext(_wav(), b"\0" * 10, b"\0" * 8), "plain.wav": _wav()})
    assert sf.info(str(folder / "bwf.wav")).frames == 3200  # still a WAV libsndfile reads
    result = _init(str(folder), "--utc-offset", "Europe/Berlin", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] is True and summary["recorded_at_sources"] == {"bext": 1, "mtime": 2}
    recorded = dict(pd.read_csv(io.StringIO(summary["manifest_csv"]))[["session_id", "recorded_at"]].values)
    # the recorder's wall clock, read in the zone given; the others' modification instant shown in that zone
    assert recorded == {"bwf": "2025-11-20T14:05:09+01:00", "blank-bext": "2026-03-02T10:30:00+01:00", "plain": "2026-03-02T10:30:00+01:00"}
    assert validate_manifest(_manifest_as_the_nightly_run_reads_it(folder), str(folder)).success


def test_the_default_zone_is_this_machines_with_its_summer_time(tmp_path, monkeypatch):
    if not Path("/usr/share/zoneinfo/Europe/Berlin").exists():
        pytest.skip("no system time zone database")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        folder = _folder(tmp_path, {"winter.wav": _wav(), "summer.wav": _with_bext(_wav(), b"2026:07:01", b"09:00:00")})
        skeleton = manifest_skeleton(str(folder))
        assert list(skeleton.manifest["recorded_at"]) == ["2026-07-01T09:00:00+02:00", "2026-03-02T10:30:00+01:00"]
        assert skeleton.recorded_at_sources == ("bext", "mtime")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_dry_run_prints_both_files_and_writes_nothing(tmp_path):
    folder = _folder(tmp_path, {"a.wav": _wav(), "b.wav": _wav()})
    result = _init(str(folder), "--dry-run", "--utc-offset", "Z", "--participants-per-recording", "2")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "b.wav"]
    out = result.stdout
    assert f"# {folder}/manifest.csv\nsession_id,survey_id,audio_file,recorded_at," in out
    assert "a,SV07,a.wav,2026-03-02T09:30:00+00:00,,,,,a-p1;a-p2,\n" in out
    assert f"# {folder}/participants.csv\nparticipant_id,age_band,gender,market,segment\na-p1,,,,\na-p2,,,,\nb-p1,,,,\nb-p2,,,,\n" in out


def test_refuses_to_replace_an_existing_manifest_unless_forced(tmp_path):
    folder = _folder(tmp_path, {"a.wav": _wav()})
    (folder / "manifest.csv").write_text("hand-made\n")
    result = _init(str(folder))
    assert result.exit_code == 1
    assert "already has manifest.csv" in result.stderr and "--force" in result.stderr
    assert (folder / "manifest.csv").read_text() == "hand-made\n" and not (folder / "participants.csv").exists()
    (folder / "manifest.csv").unlink()
    (folder / "participants.json").write_text("[]")  # a participants file alone is somebody's work too
    assert _init(str(folder)).exit_code == 1 and not (folder / "manifest.csv").exists()
    forced = _init(str(folder), "--force", "--participant", "mod-1", "--participant", "guest")
    assert forced.exit_code == 0, forced.output
    assert _manifest_as_the_nightly_run_reads_it(folder)["participants"].tolist() == ["mod-1;guest"]
    assert [s.participant_ids for s in read_survey(str(folder)).sessions] == [("mod-1", "guest")]  # the CSV wins over the JSON
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def test_a_folder_without_recordings_exits_1_naming_the_folder(tmp_path):
    folder = _folder(tmp_path, {"notes.txt": b"x", "a.turns.csv": b"start_s,end_s,participant_id\n"})
    result = _init(str(folder))
    assert result.exit_code == 1
    assert f"{folder}: no recordings in the folder" in result.stderr and ".wav" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["a.turns.csv", "notes.txt"]
    missing = _init(str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and f"{tmp_path / 'nowhere'}: folder not found" in missing.stderr


@pytest.mark.parametrize("args, message", [
    (["--utc-offset", "+25:00"], "out of range"),
    (["--utc-offset", "Mars/Olympus"], "neither a UTC offset"),
    (["--participant", "a b"], "without spaces"),
    (["--participant", "x", "--participants-per-recording", "3"], "not both"),
    (["--session-prefix", "../"], "session prefix"),
])
def test_bad_options_exit_2(tmp_path, args, message):
    folder = _folder(tmp_path, {"a.wav": _wav()})
    result = _init(str(folder), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (folder / "manifest.csv").exists()


def test_clashing_names_and_unsafe_folders(tmp_path):
    folder = _folder(tmp_path, {"x.wav": b"", "x.flac": b"", "x!.ogg": b"", "会议.wav": b""})
    skeleton = manifest_skeleton(str(folder), tz=timezone.utc, session_prefix="SV07-")
    assert list(skeleton.manifest["session_id"]) == ["SV07-x", "SV07-x-2", "SV07-x-3", "SV07-session"]
    assert skeleton.manifest["session_id"].is_unique
    bad = _folder(tmp_path, {"a.wav": b""}, name="Umfrage März")
    with pytest.raises(ManifestError, match="not a valid survey id"):
        manifest_skeleton(str(bad))


def test_symlinks_leading_outside_are_skipped_with_a_note(tmp_path):
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(_wav())
    folder = _folder(tmp_path, {"a.wav": _wav()})
    os.symlink(outside, folder / "link.wav")
    os.symlink(folder / "a.wav", folder / "take2.wav")  # inside the folder: read_survey accepts it, so do we
    result = _init(str(folder), "--utc-offset", "Z")
    assert result.exit_code == 0, result.output
    assert "skipped link.wav: path 'link.wav' resolves outside the survey folder" in result.stderr
    assert _manifest_as_the_nightly_run_reads_it(folder)["audio_file"].tolist() == ["a.wav", "take2.wav"]
    assert [s.session_id for s in read_survey(str(folder)).sessions] == ["a", "take2"]


def test_session_ids_and_offsets():
    assert session_id_from_name("Grüße aus Köln — Sitzung 1.wav") == "Grusse_aus_Koln_Sitzung_1"
    assert session_id_from_name("__take.2.flac") == "take.2"
    assert parse_utc_offset("+01:00") == timezone(timedelta(hours=1))
    assert parse_utc_offset("-0530") == timezone(-timedelta(hours=5, minutes=30))
    assert parse_utc_offset("Z") == parse_utc_offset("utc") == timezone.utc
    assert parse_utc_offset("local") is None and parse_utc_offset(None) is None


@pytest.mark.s3
def test_init_on_s3(tmp_path, s3_bucket):
    import fsspec

    from ser_pipeline.settings import get_settings

    fs = fsspec.filesystem("s3", **get_settings().storage_options(s3_bucket))
    folder = f"{s3_bucket}/archive/SV09"
    fs.pipe_file(f"{folder}/r1.wav", _with_bext(_wav(), b"2026-01-12", b"18:00:00"))
    fs.pipe_file(f"{folder}/r2.flac", b"fLaC")
    dry = _init(folder, "--dry-run", "--utc-offset", "-05:00")
    assert dry.exit_code == 0, dry.output
    assert "r1,SV09,r1.wav,2026-01-12T18:00:00-05:00," in dry.stdout and not fs.exists(f"{folder}/manifest.csv")
    result = _init(folder, "--utc-offset", "-05:00", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recorded_at_sources"] == {"bext": 1, "mtime": 1}
    survey = read_survey(folder)
    assert [s.session_id for s in survey.sessions] == ["r1", "r2"] and survey.sessions[1].recorded_at.utcoffset() == timedelta(hours=-5)
    frame = pd.read_csv(io.BytesIO(fs.cat_file(f"{folder}/manifest.csv")), dtype=str, keep_default_na=False).replace({"": None})
    assert validate_manifest(frame, folder).success
    assert _init(folder).exit_code == 1  # now it has one


def test_library_refuses_to_overwrite_too(tmp_path):
    folder = _folder(tmp_path, {"a.wav": _wav()})
    skeleton = manifest_skeleton(str(folder), tz=timezone.utc)
    assert write_manifest_skeleton(skeleton) == (f"{folder}/manifest.csv", f"{folder}/participants.csv")
    with pytest.raises(FileExistsError, match="already has manifest.csv, participants.csv"):
        write_manifest_skeleton(skeleton)
