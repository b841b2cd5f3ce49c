"""Generated speech: determinism, archive layout and schemas, sidecar timings, learnability."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_pipeline.audio.decode import load_audio
from ser_pipeline.training.corpora import read_corpus, read_synth
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.storage import list_files, read_bytes
from ser_pipeline.synthetic import (
    TRUTH_COLUMNS,
    generate_archive,
    generate_corpus,
    make_voice,
    synthesize_utterance,
)

SR = 22_050
SMALL_ARCHIVE = dict(n_surveys=1, sessions_per_survey=2, participants_per_session=3, utterances_per_session=5)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


# --- synthesize_utterance --------------------------------------------------------------------


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_utterance_shape_level_and_voicing(emotion):
    voice = make_voice("v1", "female", np.random.default_rng(1))
    y = synthesize_utterance(emotion, voice, 2.0, np.random.default_rng(2), SR)
    assert y.dtype == np.float32 and y.shape == (2 * SR,)
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert 10 ** (-45 / 20) < _rms(y) < 10 ** (-8 / 20)
    # leading silence before the first syllable, speech after it
    assert _rms(y[: int(0.02 * SR)]) < 0.05 * _rms(y)


def test_utterance_prosody_follows_emotion():
    """Loud emotions are louder and sad speech slower and quieter, for the same voice."""
    voice = make_voice("v2", "male", np.random.default_rng(3))

    def level(emotion):
        return np.median([_rms(synthesize_utterance(emotion, voice, 2.0, np.random.default_rng(k), SR)) for k in range(8)])

    assert level("angry") > 2 * level("neutral") > 2 * level("sad")


def test_utterance_pitch_depends_on_voice_gender():
    """The dominant periodicity (autocorrelation peak) sits near each voice's f0."""
    for gender in ("male", "female"):
        voice = make_voice("v", gender, np.random.default_rng(4))
        y = synthesize_utterance("neutral", voice, 2.0, np.random.default_rng(5), SR).astype(np.float64)
        frame = y[int(0.5 * SR) : int(0.5 * SR) + 2048]
        ac = np.correlate(frame, frame, "full")[len(frame) - 1 :]
        lo, hi = int(SR / 400), int(SR / 60)
        f0 = SR / (lo + np.argmax(ac[lo:hi]))
        assert 0.6 * voice.f0_hz < f0 < 1.7 * voice.f0_hz


def test_unknown_emotion_and_gender_rejected():
    with pytest.raises(ValueError, match="unknown emotion"):
        synthesize_utterance("bored", make_voice("v", "male", np.random.default_rng(0)), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="gender"):
        make_voice("v", "other", np.random.default_rng(0))


# --- generate_corpus -------------------------------------------------------------------------


def test_corpus_names_parse_and_determinism(tmp_path):
    a = generate_corpus(str(tmp_path / "a"), n_speakers=2, utterances_per_emotion=1, seed=7, duration_s=(0.5, 0.8))
    generate_corpus(str(tmp_path / "b"), n_speakers=2, utterances_per_emotion=1, seed=7, duration_s=(0.5, 0.8))
    generate_corpus(str(tmp_path / "c"), n_speakers=2, utterances_per_emotion=1, seed=8, duration_s=(0.5, 0.8))
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")
    assert len(a) == 2 * len(EMOTIONS)
    skipped = []
    parsed = read_corpus("auto", str(tmp_path / "a"), skipped)
    assert skipped == []
    assert sorted(parsed, key=lambda i: i.utterance_id) == sorted(read_synth(str(tmp_path / "a")), key=lambda i: i.utterance_id)
    frame = pd.DataFrame([i.__dict__ for i in parsed]).set_index("utterance_id")
    mine = a.set_index("utterance_id")
    assert (frame.loc[mine.index, ["speaker", "gender", "emotion"]] == mine[["speaker", "gender", "emotion"]]).all().all()
    assert set(a["gender"]) == {"male", "female"}
    durations = [load_audio(p).duration_s for p in a["path"]]
    assert all(0.5 <= d <= 0.8 + 1e-3 for d in durations)


@pytest.mark.slow
def test_corpus_emotions_learnable_across_speakers(tmp_path):
    """Logistic regression on mean/std MFCC, speaker-grouped folds: well above chance (1/8)."""
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = generate_corpus(str(tmp_path), n_speakers=6, utterances_per_emotion=5, seed=3, duration_s=(1.0, 2.0))
    feats = []
    for path in frame["path"]:
        mfcc = librosa.feature.mfcc(y=load_audio(path).samples, sr=SR, n_mfcc=20)
        feats.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    scores = cross_val_score(model, np.array(feats), frame["emotion"], groups=frame["speaker"], cv=GroupKFold(3))
    assert scores.mean() > 0.35, scores  # chance is 0.125
    # ...but not trivially: a perfect score would mean the generator leaves nothing to learn
    assert scores.mean() < 0.98, scores


# --- generate_archive ------------------------------------------------------------------------

MANIFEST_COLUMNS = ["session_id", "survey_id", "audio_file", "recorded_at", "moderator", "market", "location", "participants", "metadata"]
PARTICIPANT_COLUMNS = ["participant_id", "age_band", "gender", "market", "segment"]


def test_archive_determinism(tmp_path):
    generate_archive(str(tmp_path / "a"), seed=5, sidecar="mixed", **SMALL_ARCHIVE)
    generate_archive((tmp_path / "b").as_uri(), seed=5, sidecar="mixed", **SMALL_ARCHIVE)
    generate_archive(str(tmp_path / "c"), seed=6, sidecar="mixed", **SMALL_ARCHIVE)
    a = _tree_bytes(tmp_path / "a")
    assert a == _tree_bytes(tmp_path / "b")
    assert a["SV01/SV01-S01.wav"] != _tree_bytes(tmp_path / "c")["SV01/SV01-S01.wav"]


def test_archive_layout_and_schemas(tmp_path):
    truth = generate_archive(
        str(tmp_path), n_surveys=2, sessions_per_survey=3, participants_per_session=3, utterances_per_session=4,
        seed=1, sidecar="mixed", start=date(2026, 3, 2), turn_duration_s=(0.8, 1.2),
    )  # fmt: skip
    assert list(truth.columns) == list(TRUTH_COLUMNS) and len(truth) == 2 * 3 * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SV01", "SV02"]
    for survey in ("SV01", "SV02"):
        folder = tmp_path / survey
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(
            ["manifest.csv", "participants.csv", "_truth.csv"]
            + [f"{survey}-S0{s}.wav" for s in (1, 2, 3)]
            + [f"{survey}-S01.turns.csv", f"{survey}-S02.rttm", f"{survey}-S03.turns.csv", f"{survey}-S03.rttm"]
        )
        manifest = pd.read_csv(folder / "manifest.csv", dtype=str)
        people = pd.read_csv(folder / "participants.csv", dtype=str)
        assert list(manifest.columns) == MANIFEST_COLUMNS
        assert list(people.columns) == PARTICIPANT_COLUMNS
        assert (manifest["survey_id"] == survey).all() and manifest["session_id"].is_unique
        when = [datetime.fromisoformat(t) for t in manifest["recorded_at"]]
        assert all(w.tzinfo is not None and w.utcoffset() is not None for w in when)
        assert all(w.date() >= date(2026, 3, 2) for w in when)
        assert (max(when) - min(when)).days >= 14  # spread over several weeks
        listed = [p for row in manifest["participants"] for p in row.split(";")]
        assert sorted(listed) == sorted(people["participant_id"]) and len(set(listed)) == 3 * 3
        assert set(people["gender"]) <= {"male", "female"}
        for meta in manifest["metadata"]:
            meta = json.loads(meta)
            assert isinstance(meta, dict) and set(meta["questions"]) == {"Q1", "Q2", "Q3", "Q4"} and meta["topic"]
        for row in manifest.itertuples():
            audio = load_audio(str(folder / row.audio_file))
            turns = truth[truth["session_id"] == row.session_id]
            assert turns["end_s"].max() < audio.duration_s
            assert set(turns["participant_id"]) <= set(row.participants.split(";"))
        stored = pd.read_csv(folder / "_truth.csv")
        mine = truth[truth["survey_id"] == survey].reset_index(drop=True)
        pd.testing.assert_frame_equal(stored[["session_id", "participant_id", "start_s", "end_s", "emotion"]],
                                      mine[["session_id", "participant_id", "start_s", "end_s", "emotion"]])  # fmt: skip
    assert set(truth["emotion"]) <= set(EMOTIONS)
    assert set(truth["question"]) == {"Q1", "Q2", "Q3", "Q4"}


def test_sidecars_agree_with_truth_and_each_other(tmp_path):
    truth = generate_archive(str(tmp_path), seed=2, sidecar="mixed", **{**SMALL_ARCHIVE, "sessions_per_survey": 3})
    folder = tmp_path / "SV01"
    csv = pd.read_csv(folder / "SV01-S03.turns.csv")
    assert list(csv.columns) == ["start_s", "end_s", "participant_id", "question"]
    rttm = [line.split() for line in (folder / "SV01-S03.rttm").read_text().splitlines()]
    assert all(len(f) == 10 and f[0] == "SPEAKER" and f[1] == "SV01-S03" and f[2] == "1" for f in rttm)
    assert all(f[5] == f[6] == f[8] == f[9] == "<NA>" for f in rttm)
    expected = truth[truth["session_id"] == "SV01-S03"]
    assert [f[7] for f in rttm] == list(csv["participant_id"]) == list(expected["participant_id"])
    np.testing.assert_allclose([float(f[3]) for f in rttm], csv["start_s"], atol=1e-3)
    np.testing.assert_allclose([float(f[3]) + float(f[4]) for f in rttm], csv["end_s"], atol=2e-3)
    np.testing.assert_allclose(csv["start_s"], expected["start_s"])


@pytest.mark.parametrize("sidecar, csv_count, rttm_count", [("csv", 2, 0), ("rttm", 0, 2), (None, 0, 0)])
def test_sidecar_modes(tmp_path, sidecar, csv_count, rttm_count):
    generate_archive(str(tmp_path), seed=0, sidecar=sidecar, **{**SMALL_ARCHIVE, "utterances_per_session": 2})
    assert len(list(tmp_path.rglob("*.turns.csv"))) == csv_count
    assert len(list(tmp_path.rglob("*.rttm"))) == rttm_count
    assert (tmp_path / "SV01" / "_truth.csv").exists()


def test_turn_timings_match_where_speech_is(tmp_path):
    """Energy inside each sidecar turn is far above the room tone in the pauses between turns."""
    truth = generate_archive(str(tmp_path), seed=4, sidecar="csv", **SMALL_ARCHIVE)
    for session_id, turns in truth.groupby("session_id"):
        y = load_audio(str(tmp_path / "SV01" / f"{session_id}.wav")).samples
        inside = np.zeros(len(y), bool)
        for t in turns.itertuples():
            segment = y[int(t.start_s * SR) : int(t.end_s * SR)]
            inside[int(t.start_s * SR) : int(t.end_s * SR)] = True
            assert _rms(segment) > 10 ** (-45 / 20)
        pauses = y[~inside]
        assert 10 * np.log10(_rms(y[inside]) ** 2 / _rms(pauses) ** 2) > 25
        # pauses of 0.3..1.5 s between turns
        gaps = turns["start_s"].to_numpy()[1:] - turns["end_s"].to_numpy()[:-1]
        assert gaps.min() >= 0.299 and gaps.max() <= 1.501


def test_emotions_persist_in_sticky_runs(tmp_path):
    truth = generate_archive(
        str(tmp_path), n_surveys=2, sessions_per_survey=2, participants_per_session=3, utterances_per_session=16,
        seed=9, sidecar=None, turn_duration_s=(0.3, 0.4),
    )  # fmt: skip
    same = [
        a == b
        for _, person in truth.groupby("participant_id")
        for a, b in zip(person["emotion"].to_numpy()[:-1], person["emotion"].to_numpy()[1:])
    ]
    # independent draws from 8 emotions repeat ~1/8 of the time; stickiness 0.7 gives > 0.7
    assert np.mean(same) > 0.55, np.mean(same)


def test_archive_rejects_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="sidecar"):
        generate_archive(str(tmp_path), sidecar="xml")
    with pytest.raises(ValueError, match="format"):
        generate_archive(str(tmp_path), fmt="mp4")


def test_archive_flac_format(tmp_path):
    generate_archive(str(tmp_path), seed=0, fmt="flac", **{**SMALL_ARCHIVE, "utterances_per_session": 2})
    manifest = pd.read_csv(tmp_path / "SV01" / "manifest.csv")
    assert all(f.endswith(".flac") for f in manifest["audio_file"])
    assert load_audio(str(tmp_path / "SV01" / manifest["audio_file"][0])).info.format == "FLAC"


@pytest.mark.s3
def test_archive_and_corpus_on_s3(s3_bucket, tmp_path):
    truth = generate_archive(f"{s3_bucket}/archive", seed=3, sidecar="rttm", **{**SMALL_ARCHIVE, "utterances_per_session": 2})
    generate_archive(str(tmp_path), seed=3, sidecar="rttm", **{**SMALL_ARCHIVE, "utterances_per_session": 2})
    remote = list_files(f"{s3_bucket}/archive")
    local = _tree_bytes(tmp_path)
    assert sorted(u.split("/archive/", 1)[1] for u in remote) == sorted(local)
    assert all(read_bytes(u) == local[u.split("/archive/", 1)[1]] for u in remote)
    assert not any("/.tmp-" in u for u in remote)
    assert len(truth) == 4
    frame = generate_corpus(f"{s3_bucket}/corpus", n_speakers=1, utterances_per_emotion=1, seed=0, duration_s=(0.3, 0.4))
    assert len(read_synth(f"{s3_bucket}/corpus")) == len(frame) == len(EMOTIONS)
