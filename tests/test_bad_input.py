"""Bad input through the nightly run: every broken, odd or hostile recording and manifest ends as
a correct result or a quarantine row with a clear reason; none stops the run; nothing stored
earlier is lost or duplicated. Real model (the session's tiny champion), real DuckDB, real files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

from support.messy import SR, speech, wav_bytes, write_long_wav, write_survey

pytestmark = pytest.mark.slow

CLEAN_SPANS = [(0.9, 2.9), (3.7, 6.2), (7.0, 8.8)]  # where speech() puts its three utterances


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_champion):
    from ser_pipeline.settings import get_settings

    monkeypatch.setenv("SER_REGISTRY_URL", tiny_champion[0])
    return tmp_path


def _rows(tmp_path: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _bad_recordings(quirks_dir: Path) -> dict[str, tuple[str, bytes | Path]]:
    """Session id -> (audio file name, content) for every bad recording of the issue."""
    y = speech()
    clean = wav_bytes(y)
    rng = np.random.default_rng(7)
    # the clean recording's 16-bit samples, stored as float with a few broken ones: only the defect differs
    with_nonfinite = sf.read(io.BytesIO(clean), dtype="float32")[0]
    with_nonfinite[[1000, 25_000, 60_000, 61_000]] = [np.nan, np.inf, -np.inf, np.nan]
    recordings: dict[str, tuple[str, bytes | Path]] = {
        "clean": ("clean.wav", clean),
        "zero-bytes": ("zero.wav", b""),
        "truncated-header": ("cut-header.wav", clean[:30]),
        "truncated-data": ("cut-data.wav", clean[: len(clean) // 2]),
        "random-bytes": ("random.wav", rng.bytes(40_000)),
        "text-as-wav": ("notes.wav", b"moderator notes, not audio\n" * 200),
        "text-file": ("transcript.txt", "P001: Ich finde das Produkt gut.\n".encode() * 50),
        "silence": ("silence.wav", wav_bytes(np.zeros(5 * SR, np.float32))),
        "dc-offset": ("dc.wav", wav_bytes(np.clip(y + 0.5, -1, 1))),
        "clipped": ("clipped.wav", wav_bytes(np.clip(y * 30, -1, 1))),
        "one-sample": ("one-sample.wav", wav_bytes(np.array([0.3], np.float32))),
        "tenth-second": ("tenth.wav", wav_bytes(y[SR : SR + SR // 10])),
        "eight-channels": ("eight.wav", wav_bytes(np.stack([y * g for g in (1, .5, 0, .2, 1, 1, .3, .9)], axis=1))),
        "rate-8k": ("8k.wav", wav_bytes(speech(sr=8_000), 8_000)),
        "rate-192k": ("192k.wav", wav_bytes(speech(sr=192_000), 192_000, "PCM_24")),
        "nan-inf": ("nan-inf.wav", wav_bytes(with_nonfinite, subtype="FLOAT")),
        # Other audio than "clean": identical bytes are one recording (ids come from content).
        "unicode-name": ("Grüße aus Köln — Sitzung 1 会议 ü.wav", wav_bytes(speech(seed=5))),
    }
    for i, quirk in enumerate(sorted(quirks_dir.glob("*.wav"))):
        recordings[f"quirk-{i + 1}"] = (quirk.name, quirk)
    return recordings


# session -> (outcome, what the quarantine reason says) for the BAD survey
EXPECTED_QUARANTINE = {
    "zero-bytes": "empty file (0 bytes)",
    "truncated-header": "truncated WAV header",
    "random-bytes": "not a recognised audio format",
    "text-as-wav": "not a recognised audio format",
    "text-file": "not a recognised audio format",
    "silence": "no speech found",
    "one-sample": "no speech found",
    "tenth-second": "no speech found",
}
LABELLED = ["truncated-data", "clean", "dc-offset", "clipped", "eight-channels", "rate-8k", "rate-192k", "nan-inf", "unicode-name",
            "quirk-1", "quirk-2", "quirk-3", "quirk-4", "quirk-5"]


def _outcomes(tmp_path: Path, report) -> dict[str, str]:
    """Per session of the BAD survey: 'labelled:<n utterances>' or 'quarantined:<reason>'."""
    out = {}
    for session_id, n in _rows(tmp_path, "SELECT session_id, count(*) FROM utterances u JOIN predictions p USING (utterance_id) "
                                         "JOIN sessions s USING (session_id) WHERE s.survey_id = 'BAD' GROUP BY 1"):
        out[session_id] = f"labelled:{n}"
    by_file = {audio_url: session for session, audio_url in _rows(tmp_path, "SELECT session_id, audio_url FROM sessions")}
    for stage, source, reason in _rows(tmp_path, "SELECT stage, source, reason FROM quarantine WHERE stage = 'audio'"):
        out[by_file[source]] = f"quarantined:{reason}"
    return out


@pytest.mark.realdata
def test_every_bad_input_is_labelled_or_quarantined_and_nothing_earlier_is_lost(env, quirks_dir, settings):
    from ser_pipeline.runs.nightly import nightly_markdown, run_nightly

    tmp_path = env
    archive = tmp_path / "archive"
    write_survey(archive, "GOOD", {"GOOD-1": ("a.wav", wav_bytes(speech(seed=1))), "GOOD-2": ("b.wav", wav_bytes(speech(seed=2)))})
    first = run_nightly(archive.as_uri(), settings=settings)
    assert first.status == "completed", nightly_markdown(first)
    stored_before = _rows(tmp_path, "SELECT * FROM predictions ORDER BY utterance_id")
    assert len(stored_before) == 6

    # each recording its own participant: a recording's probabilities do not depend on which others share its batch
    write_survey(archive, "BAD", _bad_recordings(quirks_dir), participant_per_session=True)
    # A manifest row pointing at a file that is not there sets that session aside, and its
    # survey's other session is labelled; a manifest repeating a session id cannot be trusted
    # at all: that survey is set aside whole. The others go on.
    write_survey(archive, "MISSING", {"MISSING-1": ("here.wav", wav_bytes(speech(seed=3))), "MISSING-2": ("gone.wav", None)})
    dup = write_survey(archive, "DUP", {"DUP-1": ("x.wav", wav_bytes(speech(seed=4)))})
    (dup / "manifest.csv").write_text((dup / "manifest.csv").read_text() + (dup / "manifest.csv").read_text().splitlines()[1] + "\n")

    report = run_nightly(archive.as_uri(), batch_size=8, settings=settings)
    markdown = nightly_markdown(report)
    assert report.error is None, markdown

    outcomes = _outcomes(tmp_path, report)
    problems = []
    for session in LABELLED:
        if not outcomes.get(session, "").startswith("labelled:"):
            problems.append(f"{session}: expected labels, got {outcomes.get(session)}")
    for session, reason in EXPECTED_QUARANTINE.items():
        if reason not in outcomes.get(session, ""):
            problems.append(f"{session}: expected quarantine '{reason}', got {outcomes.get(session)}")
    assert not problems, "\n".join(problems) + "\n\n" + markdown
    assert set(outcomes) == set(LABELLED) | set(EXPECTED_QUARANTINE)

    # Recordings that are merely odd give the clean recording's utterances ...
    spans = {}
    for session, start, end in _rows(tmp_path, "SELECT session_id, start_s, end_s FROM utterances ORDER BY 1, 2"):
        spans.setdefault(session, []).append((start, end))
    np.testing.assert_allclose(spans["clean"], CLEAN_SPANS, atol=0.3)  # utterances end in a short trailing silence
    for session in ("dc-offset", "clipped", "eight-channels", "nan-inf", "unicode-name", "rate-8k", "rate-192k"):
        assert len(spans[session]) == 3, (session, spans[session])
        np.testing.assert_allclose(spans[session], spans["clean"], atol=0.15, err_msg=session)
    # ... and where only a defect was added (a DC offset, a few NaN/inf samples),
    # the clean recording's (nearly) probabilities.
    probs = {}
    for session, start, *p in _rows(tmp_path, "SELECT u.session_id, u.start_s, " + ", ".join(f"coalesce(p.p_{e}, 0)" for e in _emotions())
                                    + " FROM utterances u JOIN predictions p USING (utterance_id) ORDER BY 1, 2"):
        probs.setdefault(session, []).append(p)
    clean = np.array(probs["clean"])
    for session in ("dc-offset", "nan-inf"):
        np.testing.assert_allclose(np.array(probs[session]), clean, atol=0.05, err_msg=session)
    # Half a WAV keeps the utterances of its first half (the cut one clipped), with a warning
    # row saying how much was declared and found.
    cut = spans["truncated-data"]
    assert len(cut) == 2, cut
    np.testing.assert_allclose(cut[0], spans["clean"][0], atol=0.15)
    assert abs(cut[1][0] - spans["clean"][1][0]) < 0.15 and cut[1][1] <= 4.76
    (session, declared_s, found_s), = _rows(tmp_path, "SELECT session_id, declared_s, found_s FROM recording_warnings "
                                                      "WHERE kind = 'truncated'")
    assert session == "truncated-data" and abs(declared_s - 9.5) < 0.02 and abs(found_s - 4.75) < 0.02
    # Every one of the five real quirk files (float WAVs, 96 kHz, AIFF named .wav) is one word.
    assert all(len(spans[f"quirk-{i}"]) == 1 for i in range(1, 6))

    # The repeated id quarantines its survey, the missing file only its session; each reason
    # names the problem.
    manifests = dict(_rows(tmp_path, "SELECT source, reason FROM quarantine WHERE stage = 'manifest'"))
    assert list(manifests) == [(archive / "DUP").as_uri()], manifests
    duplicate = manifests[(archive / "DUP").as_uri()]
    assert "session_id" in duplicate and "unique" in duplicate
    sessions = _rows(tmp_path, "SELECT source, reason FROM quarantine WHERE stage = 'session'")
    assert [s for s, _ in sessions] == [(archive / "MISSING" / "gone.wav").as_uri()], sessions
    assert "session MISSING-2 (manifest row 2)" in sessions[0][1] and "audio_file_exists" in sessions[0][1]
    assert _rows(tmp_path, "SELECT survey_id, session_id FROM sessions WHERE survey_id IN ('MISSING', 'DUP')") == [("MISSING", "MISSING-1")]
    assert _rows(tmp_path, "SELECT count(*) > 0 FROM utterances WHERE session_id = 'MISSING-1'") == [(True,)]

    # Nothing stored earlier was touched, and a run over the same archive adds nothing.
    assert _rows(tmp_path, "SELECT * FROM predictions WHERE utterance_id IN (SELECT unnest(?)) ORDER BY utterance_id",
                 [[r[0] for r in stored_before]]) == stored_before
    counts = _rows(tmp_path, "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM quarantine)")
    again = run_nightly(archive.as_uri(), batch_size=8, settings=settings)
    assert again.error is None and again.predictions_loaded == 0
    assert _rows(tmp_path, "SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM quarantine)") == counts
    assert _rows(tmp_path, "SELECT count(*), count(DISTINCT utterance_id) FROM predictions")[0] == (counts[0][0],) * 2


def _emotions():
    from ser_pipeline.labels import EMOTIONS

    return EMOTIONS


@pytest.mark.prefect
@pytest.mark.realdata
def test_bad_inputs_through_the_prefect_flow(env, quirks_dir, prefect_harness):
    """The same recordings through the deployed flow's code path: the flow run completes
    (nothing failed, some inputs set aside), and its artifact lists every quarantined file."""
    from flows.nightly import label_new_audio

    tmp_path = env
    archive = tmp_path / "archive"
    write_survey(archive, "BAD", _bad_recordings(quirks_dir))
    state = label_new_audio(archive.as_uri(), str(tmp_path / "warehouse.duckdb"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["status"] == "partial" and summary["quarantined"] == len(EXPECTED_QUARANTINE)
    assert {s for (s,) in _rows(tmp_path, "SELECT DISTINCT session_id FROM utterances")} == set(LABELLED)
    from support.prefect_artifacts import latest_artifact

    markdown = latest_artifact("nightly-labeling-report")
    for name in ("zero.wav", "cut-header.wav", "cut-data.wav", "random.wav", "notes.wav", "transcript.txt", "silence.wav"):
        assert name in markdown


def test_a_two_hour_recording_is_processed_in_bounded_memory(env):
    """A two-hour session (16 kHz PCM, 230 MB; 635 MB if decoded whole at 22.05 kHz) in a child
    process: its peak RSS may grow by far less than the decoded file over a run on a
    one-minute recording in the same process. The file is written block by block."""
    tmp_path = env
    small, large = tmp_path / "small", tmp_path / "large"
    write_survey(small, "MIN", {"MIN-1": ("one-minute.wav", None)})
    write_long_wav(small / "MIN" / "one-minute.wav", hours=1 / 60, speech_every_s=30)
    write_survey(large, "LONG", {"LONG-1": ("two-hours.wav", None)})
    expected = write_long_wav(large / "LONG" / "two-hours.wav", hours=2.0, speech_every_s=30)
    child = textwrap.dedent(f"""
        import json, resource, sys
        from ser_pipeline.runs.nightly import run_nightly
        from ser_pipeline.settings import get_settings
        def peak_mb():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first = run_nightly({small.as_uri()!r}, {str(tmp_path / 'small.duckdb')!r}, batch_size=32, settings=get_settings())
        after_small = peak_mb()
        second = run_nightly({large.as_uri()!r}, {str(tmp_path / 'large.duckdb')!r}, batch_size=32, settings=get_settings())
        from ser_pipeline.runs.nightly import nightly_markdown
        print(nightly_markdown(second), file=sys.stderr)
        print(json.dumps({{"small": first.summary(), "large": second.summary(), "after_small_mb": after_small,
                          "after_large_mb": peak_mb()}}))
    """)
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=900,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["small"]["status"] == "completed" and out["large"]["status"] == "completed", result.stderr[-3000:]
    assert abs(out["large"]["predictions_loaded"] - expected) <= expected * 0.05, out
    assert out["large"]["batches"] >= expected // 32
    growth = out["after_large_mb"] - out["after_small_mb"]
    assert growth < 200, f"peak RSS grew by {growth:.0f} MB over the two-hour recording ({out})"


def test_reasons_name_the_file(env, settings):
    """A quarantine row's reason says what is wrong without the reader opening the file; the
    source is the file's URL (spaces and unicode kept as they are)."""
    from ser_pipeline.runs.nightly import run_nightly

    tmp_path = env
    archive = tmp_path / "archive"
    write_survey(archive, "ODD", {"ODD-1": ("leer datei ü.wav", b""), "ODD-2": ("ok.wav", wav_bytes(speech()))})
    report = run_nightly(archive.as_uri(), settings=settings)
    assert report.status == "partial"
    ((source, reason),) = _rows(tmp_path, "SELECT source, reason FROM quarantine")
    assert source.endswith("/ODD/leer datei ü.wav") and reason == "empty file (0 bytes)"
