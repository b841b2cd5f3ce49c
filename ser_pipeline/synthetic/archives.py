"""A whole focus-group archive in the layout of docs/ARCHITECTURE.md: surveys of sessions whose
recordings are turns over room tone, with manifests, participants, sidecar turns and the
truth (``_truth.csv``) of who said what in which emotion (and, when espeak-ng speaks the turns,
which words).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.settings import Settings
from ser_pipeline.storage import join, write_bytes_atomic
from ser_pipeline.synthetic.encoding import _FORMATS, _csv_bytes, _encode
from ser_pipeline.synthetic.speech import synthesize_utterance
from ser_pipeline.synthetic.spoken import speak
from ser_pipeline.synthetic.voices import DEFAULT_SAMPLE_RATE, make_voice

_MARKETS = (
    ("UK", "London", 0),
    ("DE", "Berlin", 1),
    ("US", "Chicago", -6),
    ("FR", "Lyon", 1),
    ("JP", "Osaka", 9),
)
_TOPICS = (
    ("Packaging redesign", ("First impressions of the new pack", "Ease of opening", "Price expectations", "Would you switch?")),
    ("Streaming service", ("How you watch today", "The new interface", "Ads in the cheaper plan", "Cancelling")),
    ("Banking app", ("Logging in", "Customer support", "Fees", "Recommending it to a friend")),
    ("Electric car", ("Range worries", "Charging at home", "Test drive", "Total cost")),
    ("Coffee chain", ("Morning routine", "The loyalty card", "New cup sizes", "Store atmosphere")),
)
_MODERATORS = ("A. Moreau", "B. Okafor", "C. Lindqvist", "D. Tanaka")
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_SEGMENTS = ("loyal", "lapsed", "prospect")
_SIDECARS = (None, "csv", "rttm", "mixed")

TRUTH_COLUMNS = (
    "survey_id", "session_id", "audio_file", "recorded_at", "market", "turn_index",
    "participant_id", "gender", "question", "start_s", "end_s", "emotion",
)  # fmt: skip
SPOKEN_TRUTH_COLUMNS = (*TRUTH_COLUMNS, "text")
"""The truth's columns when espeak-ng speaks the turns: ``text`` holds each turn's words."""


def _emotion_weights(emotions: Sequence[str], negativity: float) -> np.ndarray:
    neg = np.array([e in NEGATIVE_EMOTIONS for e in emotions])
    w = np.where(neg, negativity / max(neg.sum(), 1), (1 - negativity) / max((~neg).sum(), 1))
    return w / w.sum()


def _sidecar_kinds(sidecar: str | None, index: int) -> tuple[bool, bool]:
    """(turns.csv, rttm) for the session at ``index``; "mixed" cycles csv, rttm, both."""
    if sidecar is None:
        return False, False
    if sidecar == "csv":
        return True, False
    if sidecar == "rttm":
        return False, True
    return ((True, False), (False, True), (True, True))[index % 3]


def _room_tone(n: int, rng: np.random.Generator, level_db: float = -62.0) -> np.ndarray:
    """Low background noise (room tone): low-passed hiss at ``level_db`` dBFS RMS."""
    white = rng.standard_normal(n)
    hiss = uniform_filter1d(white, size=8, mode="wrap")
    tone = hiss / (np.std(hiss) + 1e-12)
    return (10 ** (level_db / 20) * tone).astype(np.float32)


def generate_archive(
    url: str,
    n_surveys: int = 2,
    sessions_per_survey: int = 3,
    participants_per_session: int = 4,
    utterances_per_session: int = 12,
    seed: int = 0,
    sidecar: str | None = "csv",
    start: date = date(2026, 1, 5),
    fmt: str = "wav",
    emotions: Sequence[str] = EMOTIONS,
    turn_duration_s: tuple[float, float] = (1.5, 3.5),
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    stickiness: float = 0.7,
    progress: Callable[[int, int], None] | None = None,
    settings: Settings | None = None,
    speech: str = "formant",
) -> pd.DataFrame:
    """Write a focus-group archive under ``url`` and return the truth, one row per turn.

    Surveys are ``SV01``.., sessions ``SV01-S01``.., participants ``SV01-P001``.. (each
    session has its own participants). A session's recording holds
    ``utterances_per_session`` turns separated by 0.3-1.5 s pauses over room tone; each turn
    answers one of four questions (Q1..Q4, in order). A participant's emotion persists from
    one turn to their next with probability ``stickiness``; otherwise it is drawn from the
    survey's mix, whose share of negative emotions differs between surveys and drifts over
    the weeks. ``progress(done, total)`` is called after each session recording. ``sidecar`` is ``"csv"`` (``<session>.turns.csv``), ``"rttm"``, ``"mixed"``
    (sessions cycle csv, rttm, both) or ``None``. Within a survey the audio and sidecars are
    written first and ``manifest.csv`` last, each file atomically, so a reader never sees a
    manifest pointing at missing audio.

    ``speech="formant"`` (the default) synthesises wordless turns of ``turn_duration_s``;
    ``speech="espeak"`` has espeak-ng speak each turn, a line of :data:`.spoken.SCRIPT` drawn at
    random (its length sets the turn's, ``turn_duration_s`` is unused), and the truth gains a
    ``text`` column with the words (:data:`SPOKEN_TRUTH_COLUMNS`).
    """
    if speech not in ("formant", "espeak"):
        raise ValueError(f"speech must be 'formant' or 'espeak', not {speech!r}")
    columns = list(SPOKEN_TRUTH_COLUMNS if speech == "espeak" else TRUTH_COLUMNS)
    if sidecar not in _SIDECARS:
        raise ValueError(f"sidecar must be one of {_SIDECARS}, not {sidecar!r}")
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; choose one of {sorted(_FORMATS)}")
    truth_rows: list[dict] = []
    for sv in range(1, n_surveys + 1):
        survey_id = f"SV{sv:02d}"
        rng = np.random.default_rng([seed, 10, sv])
        market, city, utc_offset = _MARKETS[(sv - 1) % len(_MARKETS)]
        topic, questions = _TOPICS[(sv - 1) % len(_TOPICS)]
        survey_start = start + timedelta(days=int(rng.integers(0, 7)))
        base_negativity = float(np.clip(0.2 + 0.45 * rng.random(), 0.05, 0.9))
        drift_per_week = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.08))
        tz = timezone(timedelta(hours=utc_offset))
        survey_url = join(url, survey_id)

        sessions, participants = [], []
        for se in range(1, sessions_per_survey + 1):
            session_id = f"{survey_id}-S{se:02d}"
            srng = np.random.default_rng([seed, 11, sv, se])
            week = (se - 1) * 7 // max(1, sessions_per_survey - 1) if sessions_per_survey > 1 else 0
            day = survey_start + timedelta(weeks=int(week), days=int(srng.integers(0, 3)))
            recorded_at = datetime.combine(day, time(int(srng.integers(10, 19)), int(srng.choice([0, 15, 30, 45]))), tz)
            negativity = float(np.clip(base_negativity + drift_per_week * week, 0.05, 0.95))
            weights = _emotion_weights(emotions, negativity)

            people = []
            for pi in range(participants_per_session):
                pid = f"{survey_id}-P{(se - 1) * participants_per_session + pi + 1:03d}"
                gender = "male" if srng.random() < 0.5 else "female"
                people.append((pid, gender, make_voice(pid.replace("-", ""), gender, srng)))
                participants.append(
                    {
                        "participant_id": pid,
                        "age_band": str(srng.choice(_AGE_BANDS)),
                        "gender": gender,
                        "market": market,
                        "segment": str(srng.choice(_SEGMENTS)),
                    }
                )

            # Turns: speakers rarely follow themselves; emotions run in sticky per-person runs.
            current: dict[str, str] = {}
            pieces: list[np.ndarray] = []
            cursor = int(round(srng.uniform(0.3, 1.0) * sample_rate))
            pieces.append(_room_tone(cursor, srng))
            previous = -1
            turns = []
            for k in range(utterances_per_session):
                choices = [i for i in range(len(people)) if i != previous] or [0]
                who = int(srng.choice(choices))
                previous = who
                pid, gender, voice = people[who]
                if pid not in current or srng.random() >= stickiness:
                    current[pid] = str(srng.choice(list(emotions), p=weights))
                emotion = current[pid]
                question = f"Q{min(4, 1 + k * 4 // max(1, utterances_per_session))}"
                if speech == "espeak":
                    spoken = speak(emotion, voice, srng, sample_rate)
                    turn, text = spoken.samples, spoken.text
                else:
                    turn = synthesize_utterance(emotion, voice, srng.uniform(*turn_duration_s), srng, sample_rate)
                    text = None
                begin, end = cursor, cursor + len(turn)
                pieces.append(turn + _room_tone(len(turn), srng))
                pause = int(round(srng.uniform(0.3, 1.5) * sample_rate))
                pieces.append(_room_tone(pause, srng))
                cursor = end + pause
                turns.append((k, pid, gender, question, begin, end, emotion, text))
            recording = np.concatenate(pieces)

            audio_file = f"{session_id}.{fmt}"
            write_bytes_atomic(join(survey_url, audio_file), _encode(recording, sample_rate, fmt), settings)
            if progress is not None:
                progress((sv - 1) * sessions_per_survey + se, n_surveys * sessions_per_survey)
            frame = pd.DataFrame(
                [
                    {
                        "start_s": round(b / sample_rate, 3),
                        "end_s": round(e / sample_rate, 3),
                        "participant_id": pid,
                        "question": q,
                    }
                    for _k, pid, _g, q, b, e, _em, _text in turns
                ]
            )
            want_csv, want_rttm = _sidecar_kinds(sidecar, se - 1)
            if want_csv:
                write_bytes_atomic(join(survey_url, f"{session_id}.turns.csv"), _csv_bytes(frame), settings)
            if want_rttm:
                lines = [
                    f"SPEAKER {session_id} 1 {r.start_s:.3f} {r.end_s - r.start_s:.3f} <NA> <NA> {r.participant_id} <NA> <NA>\n"
                    for r in frame.itertuples()
                ]
                write_bytes_atomic(join(survey_url, f"{session_id}.rttm"), "".join(lines).encode(), settings)
            for (k, pid, gender, q, _b, _e, emotion, text), row in zip(turns, frame.itertuples()):
                truth_rows.append(
                    {
                        "survey_id": survey_id,
                        "session_id": session_id,
                        "audio_file": audio_file,
                        "recorded_at": recorded_at.isoformat(),
                        "market": market,
                        "turn_index": k,
                        "participant_id": pid,
                        "gender": gender,
                        "question": q,
                        "start_s": row.start_s,
                        "end_s": row.end_s,
                        "emotion": emotion,
                        "text": text,
                    }
                )
            sessions.append(
                {
                    "session_id": session_id,
                    "survey_id": survey_id,
                    "audio_file": audio_file,
                    "recorded_at": recorded_at.isoformat(),
                    "moderator": str(srng.choice(_MODERATORS)),
                    "market": market,
                    "location": city,
                    "participants": ";".join(p[0] for p in people),
                    "metadata": json.dumps(
                        {
                            "topic": topic,
                            "questions": {f"Q{i + 1}": text for i, text in enumerate(questions)},
                            "language": "en",
                            "synthetic": True,
                            "seed": seed,
                        },
                        sort_keys=True,
                    ),
                }
            )

        survey_truth = pd.DataFrame([r for r in truth_rows if r["survey_id"] == survey_id], columns=columns)
        write_bytes_atomic(join(survey_url, "_truth.csv"), _csv_bytes(survey_truth), settings)
        write_bytes_atomic(join(survey_url, "participants.csv"), _csv_bytes(pd.DataFrame(participants)), settings)
        write_bytes_atomic(join(survey_url, "manifest.csv"), _csv_bytes(pd.DataFrame(sessions)), settings)
    return pd.DataFrame(truth_rows, columns=columns)
