"""Hand-made survey archives and prediction frames for the warehouse tests, plus the
expected analysis frame computed with pandas alone (the independent known answers)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline import warehouse
from ser_pipeline.archive.manifest import read_survey
from ser_pipeline.settings import Settings
from ser_pipeline.warehouse import pseudonymise

PARTICIPANTS = [
    # participant_id, age_band, gender, market, segment
    ("anna.k", "18-24", "female", "DE", "loyal"),
    ("bob.m", "25-34", "male", "DE", "lapsed"),
    ("chen.w", "35-44", "female", "UK", "loyal"),
    ("dev.p", "45-54", "male", "UK", "new"),
    ("eve.r", "25-34", "female", "FR", "new"),
]

# session_id, recorded_at (note the offsets: s3 is Sunday evening locally, Monday in UTC),
# market, location, participants, turn sidecar kind
SESSIONS = [
    ("s1", "2026-03-02T10:00:00+01:00", "DE", "Berlin", ["anna.k", "bob.m"], "turns"),
    ("s2", "2026-03-04T15:30:00+00:00", "UK", "London", ["chen.w", "dev.p"], "turns"),
    ("s3", "2026-03-08T23:30:00-02:00", "DE", "Remote", ["anna.k", "bob.m", "eve.r"], "rttm"),
    ("s4", "2026-03-11T09:00:00+00:00", "FR", "Paris", ["eve.r", "chen.w"], "turns"),
    ("s5", "2026-03-25T18:00:00+01:00", "UK", "Leeds", ["dev.p", "chen.w"], "turns"),
]
QUESTIONS = ["price", "packaging", "taste", None]


def recording_bytes(survey_id: str, session_id: str) -> bytes:
    """Stand-in recording content (the manifest reader never decodes audio)."""
    return f"RIFF-fake-{survey_id}-{session_id}".encode()


def utterance_id(recording_hash: str, start_s: float, end_s: float) -> str:
    return hashlib.sha256(f"{recording_hash}:{round(start_s * 1000)}:{round(end_s * 1000)}".encode()).hexdigest()[:32]


def write_survey(root: Path, survey_id: str = "S1", seed: int = 0, turns_per_session: int = 12, session_prefix: str = "") -> Path:
    """Write a survey folder in the archive layout; returns it. Session ids are unique across
    an archive, so a second survey in the same archive needs a ``session_prefix``."""
    rng = np.random.default_rng(seed)
    folder = root / survey_id
    folder.mkdir(parents=True)
    with open(folder / "participants.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["participant_id", "age_band", "gender", "market", "segment"])
        writer.writerows(PARTICIPANTS)
    with open(folder / "manifest.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["session_id", "survey_id", "audio_file", "recorded_at", "moderator", "market", "location", "participants", "metadata"])
        for sid, at, market, location, people, kind in SESSIONS:
            sid = session_prefix + sid
            (folder / f"{sid}.wav").write_bytes(recording_bytes(survey_id, sid))
            meta = json.dumps({"product": "cola", "wave": 1 + len(sid) % 2, "moderator_notes": "ok"})
            writer.writerow([sid, survey_id, f"{sid}.wav", at, "mod.jones", market, location, ";".join(people), meta])
            t = 0.0
            turns = []
            for k in range(turns_per_session):
                length = float(np.round(rng.uniform(1.0, 6.0), 2))
                start = round(t + float(np.round(rng.uniform(0.1, 1.0), 2)), 2)
                turns.append((start, round(start + length, 2), people[k % len(people)], QUESTIONS[k % len(QUESTIONS)]))
                t = start + length
            if kind == "turns":
                with open(folder / f"{sid}.turns.csv", "w", newline="") as tf:
                    tw = csv.writer(tf)
                    tw.writerow(["start_s", "end_s", "participant_id", "question"])
                    tw.writerows([(s, e, p, q or "") for s, e, p, q in turns])
            else:
                lines = [";; diarization output"] + [
                    f"SPEAKER {sid} 1 {s:.2f} {e - s:.2f} <NA> <NA> {p} <NA> <NA>" for s, e, p, _ in turns
                ]
                (folder / f"{sid}.rttm").write_text("\n".join(lines) + "\n")
    return folder


def utterances_frame(survey) -> pd.DataFrame:
    """One row per turn of every session, in the loader's input shape (raw participant ids)."""
    rows = []
    for session in survey.sessions:
        recording_hash = hashlib.sha256(Path(session.audio_url.removeprefix("file://")).read_bytes()).hexdigest()
        for turn in session.turns:
            uid = utterance_id(recording_hash, turn.start_s, turn.end_s)
            rows.append({
                "utterance_id": uid, "session_id": session.session_id, "participant_id": turn.participant_id,
                "start_s": turn.start_s, "end_s": turn.end_s, "source_uri": session.audio_url,
                "content_hash": uid, "question": turn.question,
            })
    return pd.DataFrame(rows)


def predictions_frame(utterances: pd.DataFrame, model_version: str, seed: int, labels=EMOTIONS) -> pd.DataFrame:
    """Random but peaked class probabilities per utterance; label = argmax."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(len(labels), 0.4), size=len(utterances))
    ctx = 0.5 * proba + 0.5 * rng.dirichlet(np.full(len(labels), 0.4), size=len(utterances))
    frame = pd.DataFrame({"utterance_id": utterances["utterance_id"].to_numpy(), "model_version": model_version})
    frame["label"] = [labels[i] for i in proba.argmax(1)]
    frame["confidence"] = proba.max(1)
    for e in EMOTIONS:
        frame[f"p_{e}"] = proba[:, labels.index(e)] if e in labels else np.nan
    frame["context_label"] = [labels[i] for i in ctx.argmax(1)]
    frame["context_confidence"] = ctx.max(1)
    for e in EMOTIONS:
        frame[f"ctx_p_{e}"] = ctx[:, labels.index(e)] if e in labels else np.nan
    return frame


def expected_frame(survey, utterances: pd.DataFrame, predictions: pd.DataFrame, key: str) -> pd.DataFrame:
    """The analysis frame the views should reproduce, built with pandas from the inputs."""
    sessions = pd.DataFrame([
        {"session_id": s.session_id, "survey_id": s.survey_id, "recorded_at": pd.Timestamp(s.recorded_at).tz_convert("UTC"),
         "market": s.market, "location": s.location}
        for s in survey.sessions
    ])
    people = pd.DataFrame([
        {"participant_key": pseudonymise(p.participant_id, key), "age_band": p.age_band, "gender": p.gender,
         "participant_market": p.market, "segment": p.segment}
        for p in survey.participants
    ])
    u = utterances.copy()
    u["participant_key"] = [pseudonymise(p, key) for p in u["participant_id"]]
    u = u.merge(sessions, on="session_id").merge(people, on="participant_key", how="left")
    u = u.sort_values(["session_id", "start_s", "utterance_id"])
    u["utterance_index"] = u.groupby("session_id").cumcount() + 1
    naive = u["recorded_at"].dt.tz_localize(None)
    u["week"] = (naive.dt.normalize() - pd.to_timedelta(naive.dt.weekday, unit="D")).dt.date
    u["spoken_at"] = u["recorded_at"] + pd.to_timedelta(u["start_s"], unit="s")
    out = u.merge(predictions, on="utterance_id")
    out["is_negative"] = out["label"].isin(NEGATIVE_EMOTIONS)
    return out.reset_index(drop=True)


KEY = "test-pseudonym-key"
T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# Transcripts: what each utterance said, written so the word counts have a known answer.

OLD_TRANSCRIPT_MODEL = "whisper-small@0c1d2e3f4a5b"
TRANSCRIPT_MODEL = "whisper-large-v3@9f8e7d6c5b4a"  # sorts before the old one: only transcribed_at makes it win

# What a negative (True) and any other (False) answer to each question says, in turn.
ANSWERS: dict[tuple[str | None, bool], list[str]] = {
    ("price", True): ["Far too expensive for what it is", "Too EXPENSIVE, not worth it", "expensive and the price keeps rising"],
    ("price", False): ["The price seems fair", "A fair price for a cola", "Cheap enough, fair"],
    ("packaging", True): ["The cap broke, awful plastic", "Awful bottle, the cap leaks", "The plastic cap broke twice"],
    ("packaging", False): ["Nice bottle, easy to open", "I like the green bottle", "The bottle is easy to carry"],
    ("taste", True): ["Flat, no fizz at all", "Tastes flat and too sweet", "Too sweet, flat, disappointing"],
    ("taste", False): ["Fresh taste, nice fizz", "Nice and fresh", "Sweet but fresh"],
    (None, True): ["Long day at work, tired", "Tired of the traffic"],
    (None, False): ["We talked about the weekend", "Good weekend, thanks"],
}
HTML_TEXT = 'I <b>love</b> the new bottle & the "green" cap'
APOSTROPHE_TEXT = "it's flat, no fizz at all"
REDACTED_TEXT = "Mail me at [EMAIL] when it's less expensive"


def transcript_batches(utterances: pd.DataFrame, predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The transcripts of ``utterances`` as the nightly run loads them, written from the
    ``predictions``' labels (``ANSWERS``): an old model's batch (one utterance) and the
    current model's, and the utterance ids of the special cases, by name:

    - ``html``: the clearest emotional moment (highest confidence, not neutral or calm) says ``HTML_TEXT``;
    - ``empty``: the first negative answer to "price" was not heard (``empty_reason`` "no speech");
    - ``redacted``: the second negative answer to "price" held an email address (``REDACTED_TEXT``);
    - ``apostrophe``: the first negative answer to "taste" says ``APOSTROPHE_TEXT``;
    - ``untranscribed``: the last utterance of the last session has no transcript at all;
    - ``two_models``: the first utterance has the old model's transcript and, later, the current one's.
    """
    frame = utterances.merge(predictions[["utterance_id", "label", "confidence"]], on="utterance_id")
    frame = frame.sort_values(["session_id", "start_s"]).reset_index(drop=True)
    frame["negative"] = frame["label"].isin(NEGATIVE_EMOTIONS)
    frame["question"] = frame["question"].astype(object).where(frame["question"].notna(), None)
    negative_price = frame[(frame["question"] == "price") & frame["negative"]]["utterance_id"].tolist()
    moments = frame[~frame["label"].isin(["neutral", "calm"])].sort_values(["confidence", "utterance_id"], ascending=[False, True])
    special = {
        "html": moments["utterance_id"].iloc[0],
        "empty": negative_price[0],
        "redacted": negative_price[1],
        "apostrophe": frame[(frame["question"] == "taste") & frame["negative"]]["utterance_id"].iloc[0],
        "untranscribed": frame["utterance_id"].iloc[-1],
        "two_models": frame["utterance_id"].iloc[0],
    }
    assert len(set(special.values())) == len(special)
    texts = {special["html"]: HTML_TEXT, special["redacted"]: REDACTED_TEXT, special["apostrophe"]: APOSTROPHE_TEXT}
    turn: dict[tuple, int] = {}
    rows = []
    for r in frame.itertuples(index=False):
        key = (r.question, bool(r.negative))
        k = turn[key] = turn.get(key, -1) + 1
        if r.utterance_id == special["untranscribed"]:
            continue
        empty = r.utterance_id == special["empty"]
        rows.append({
            "utterance_id": r.utterance_id, "model": TRANSCRIPT_MODEL,
            "text": "" if empty else texts.get(r.utterance_id, ANSWERS[key][k % len(ANSWERS[key])]),
            "language": "en", "language_source": "manifest", "language_probability": None,
            "avg_logprob": -0.25, "no_speech_prob": 0.93 if empty else 0.02,
            "empty_reason": "no speech" if empty else None,
            "n_redacted": int(r.utterance_id == special["redacted"]),
        })
    current = pd.DataFrame(rows)
    old = pd.DataFrame([{"utterance_id": special["two_models"], "model": OLD_TRANSCRIPT_MODEL, "text": "an older model's words",
                         "language": "en", "language_source": "manifest", "avg_logprob": -0.9, "no_speech_prob": 0.1,
                         "empty_reason": None, "n_redacted": 0}])
    return old, current, special


def load_transcript_batches(con, old: pd.DataFrame, current: pd.DataFrame) -> None:
    """Load the old model's transcripts, then the current model's, a day apart."""
    warehouse.load_transcripts(con, old, run_id="run-old")
    warehouse.load_transcripts(con, current, run_id="run-current")
    con.execute("UPDATE transcripts SET transcribed_at = ? WHERE model = ?", [T0, OLD_TRANSCRIPT_MODEL])
    con.execute("UPDATE transcripts SET transcribed_at = ? WHERE model = ?", [T0 + timedelta(days=1), TRANSCRIPT_MODEL])


@dataclass
class Loaded:
    path: Path
    survey: object
    utterances: pd.DataFrame
    v1: pd.DataFrame
    v2: pd.DataFrame
    other_utterances: int = 0  # utterances of further surveys a test loaded
    transcripts: pd.DataFrame | None = None  # the current transcription model's rows (transcript_batches)
    special: dict[str, str] | None = None  # the special transcripts' utterance ids, by name

    def expected(self, version: str = "v2") -> pd.DataFrame:
        return expected_frame(self.survey, self.utterances, self.v1 if version == "v1" else self.v2, KEY)


@pytest.fixture(scope="session")
def _loaded_template(tmp_path_factory) -> Loaded:
    """Built once per test session; each test gets its own copy of the database file."""
    root = tmp_path_factory.mktemp("warehouse-template")
    survey = read_survey((write_survey(root / "archive", "S1")).as_uri())
    utts = utterances_frame(survey)
    v1 = predictions_frame(utts, "v1", seed=1)
    v2 = predictions_frame(utts, "v2", seed=2)
    path = root / "wh.duckdb"
    con = warehouse.connect(path, settings=Settings(warehouse_wait_s=5))
    try:
        warehouse.migrate(con)
        warehouse.load_survey(con, survey, key=KEY)
        warehouse.load_utterances(con, utts, key=KEY)
        warehouse.record_model_version(con, "v1", metrics={"uar": 0.41}, created_at=T0)
        warehouse.load_predictions(con, v1)
        warehouse.record_model_version(con, "v2", metrics={"uar": 0.47}, created_at=T0 + timedelta(days=1))
        warehouse.load_predictions(con, v2)
        old, transcripts, special = transcript_batches(utts, v2)
        load_transcript_batches(con, old, transcripts)
    finally:
        con.close()
    return Loaded(path, survey, utts, v1, v2, transcripts=transcripts, special=special)


@pytest.fixture
def loaded(_loaded_template: Loaded, tmp_path, monkeypatch) -> Loaded:
    """A warehouse holding one hand-made survey (archive read-only, shared), predictions
    of two model versions (v2 newer) and transcripts (``transcript_batches``, written from
    v2's labels); SER_PSEUDONYM_KEY is the key it was loaded with."""
    monkeypatch.setenv("SER_PSEUDONYM_KEY", KEY)
    path = tmp_path / "wh.duckdb"
    shutil.copyfile(_loaded_template.path, path)
    t = _loaded_template
    return Loaded(path, t.survey, t.utterances, t.v1, t.v2, transcripts=t.transcripts, special=t.special)
