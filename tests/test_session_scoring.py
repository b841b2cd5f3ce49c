"""Session scoring: assembled focus-group archives from labelled clips, warehouse scoring, and
the whole loop (assemble -> nightly run -> score) with a real model and a real DuckDB file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from support.tiny_model import shared_champion


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """48 generated labelled clips: 3 speakers x 8 emotions x 2, 1.0-1.5 s each."""
    from ser_pipeline.training import corpora
    from ser_pipeline import synthetic as synth

    url = tmp_path_factory.mktemp("clips").as_uri()
    synth.generate_corpus(url, n_speakers=3, utterances_per_emotion=2, seed=3, duration_s=(1.0, 1.5))
    return corpora.read_synth(url)


def _dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


def test_assembled_archive_reads_back_with_its_turns_noise_floor_and_clips_in_place(tmp_path, clips, settings):
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.archive.manifest import read_survey
    from ser_pipeline.evaluation.sessions import SESSION_TRUTH_COLUMNS, assemble_session_archive

    sr = 16_000
    url = (tmp_path / "archive").as_uri()
    made = assemble_session_archive(clips, url, speakers_per_session=3, utterances_per_session=12, noise_floor_dbfs=-50.0,
                                    condition="clean", turns="csv", sample_rate=sr, seed=1, settings=settings)
    truth = made.truth
    assert list(truth.columns) == list(SESSION_TRUTH_COLUMNS)
    assert len(truth) == len(clips) and set(truth["utterance_id"]) == {c.utterance_id for c in clips}  # each clip once

    survey = read_survey(f"{url}/{made.survey_id}")
    assert [s.session_id for s in survey.sessions] == ["EVAL-S01", "EVAL-S02", "EVAL-S03", "EVAL-S04"]
    assert len(survey.participants) == 3  # one participant per corpus speaker, ...
    by_pid = truth.groupby("participant_id")["speaker"].nunique()
    assert (by_pid == 1).all() and truth.groupby("speaker")["participant_id"].nunique().eq(1).all()
    assert all(truth.groupby("participant_id")["session_id"].nunique() == 4)  # ... who recurs across sessions
    genders = {p.participant_id: p.gender for p in survey.participants}
    assert all(genders[r.participant_id] == r.gender for r in truth.itertuples())
    for session in survey.sessions:
        rows = truth[truth["session_id"] == session.session_id]
        assert session.turns_source == "turns.csv"
        assert set(session.participant_ids) == set(rows["participant_id"])
        assert [(t.start_s, t.end_s, t.participant_id) for t in session.turns] == list(
            rows[["start_s", "end_s", "participant_id"]].itertuples(index=False, name=None))

        recording = load_audio(session.audio_url, sr).samples
        # Room tone between the clips (10 ms clear of each clip) sits at the requested level.
        edges = np.r_[0.0, rows[["start_s", "end_s"]].to_numpy().ravel(), len(recording) / sr].reshape(-1, 2)
        gaps = np.concatenate([recording[int((a + 0.01) * sr) : int((b - 0.01) * sr)] for a, b in edges])
        assert len(gaps) > sr and abs(_dbfs(gaps) - (-50.0)) <= 3.0
        # Each clip lies where the truth says: the best lag of the cross-correlation is within
        # the millisecond the times are rounded to, and the match is near perfect.
        for r in rows.itertuples():
            clip = load_audio(r.source_path, sr).samples
            assert abs(round(len(clip) / sr, 3) - (r.end_s - r.start_s)) <= 0.002
            begin, slack = int(round(r.start_s * sr)), 40
            window = recording[begin - slack : begin + slack + len(clip)]
            corr = np.correlate(window, clip, mode="valid") / (np.linalg.norm(clip) ** 2)
            lag = int(np.argmax(corr)) - slack
            assert abs(lag) <= 0.001 * sr + 1 and corr.max() == pytest.approx(1.0, abs=0.02)

    # Within a session a speaker's consecutive clips share their emotion in runs.
    ordered = truth.sort_values(["session_id", "participant_id", "start_s"])
    same = ordered.groupby(["session_id", "participant_id"])["emotion"].apply(lambda e: (e.to_numpy()[1:] == e.to_numpy()[:-1]).tolist())
    pairs = [p for ps in same for p in ps]
    assert np.mean(pairs) > 0.2  # 1/3 here; chance, with each emotion twice per speaker, is 1/15


def test_assembled_archive_with_rttm_turns_reads_back_as_diarization(tmp_path, clips, settings):
    from ser_pipeline.archive.manifest import read_survey
    from ser_pipeline.evaluation.sessions import assemble_session_archive

    url = (tmp_path / "archive").as_uri()
    made = assemble_session_archive(clips[:10], url, speakers_per_session=2, utterances_per_session=5, condition="clean",
                                    turns="rttm", sample_rate=16_000, settings=settings)
    survey = read_survey(f"{url}/{made.survey_id}")
    assert [s.turns_source for s in survey.sessions] == ["rttm"] * len(survey.sessions)
    turns = [(s.session_id, t.start_s, t.end_s, t.participant_id) for s in survey.sessions for t in s.turns]
    expected = list(made.truth[["session_id", "start_s", "end_s", "participant_id"]].itertuples(index=False, name=None))
    assert [(s, pytest.approx(a, abs=1e-6), pytest.approx(b, abs=1e-6), p) for s, a, b, p in turns] == expected


def _hand_made_warehouse(path, settings):
    """Two scored sessions (A, B) and one outside the truth (C); model v1 promoted, v0 older."""
    from datetime import datetime, timezone

    from ser_pipeline import warehouse
    from ser_pipeline.labels import EMOTIONS
    from ser_pipeline.archive.manifest import Participant, Session, Survey

    at = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    sessions = tuple(Session(s, "SV", f"file:///x/{s}.wav", at, None, None, None, ("P1", "P2")) for s in ("A", "B", "C"))
    survey = Survey("SV", "file:///x", sessions, (Participant("P1", gender="male"), Participant("P2", gender="female")))
    # utterance: (id, session, start, end, v1 probabilities, v1 context probabilities)
    utts = [
        ("u1", "A", 0.0, 2.0, {"neutral": .7, "angry": .3}, {"neutral": .8, "angry": .2}),
        ("u2a", "A", 3.0, 4.0, {"angry": .6, "sad": .4}, {"angry": .7, "sad": .3}),
        ("u2b", "A", 4.0, 5.0, {"sad": .9, "angry": .1}, {"angry": .6, "sad": .4}),
        ("u3", "A", 5.9, 8.1, {"sad": .8, "neutral": .2}, {"sad": .9, "neutral": .1}),
        ("ux", "A", 12.0, 13.0, {"happy": 1.0}, {"happy": 1.0}),
        ("u5", "B", 0.1, 1.9, {"neutral": .55, "angry": .45}, {"angry": .6, "neutral": .4}),
        ("u6", "B", 1.5, 5.0, {"neutral": .9, "calm": .1}, {"calm": .7, "neutral": .3}),
        ("uc", "C", 0.0, 2.0, {"angry": 1.0}, {"angry": 1.0}),
    ]

    def row(uid, version, p, ctx):
        out = {"utterance_id": uid, "model_version": version, "label": max(p, key=p.get), "confidence": max(p.values()),
               "context_label": max(ctx, key=ctx.get), "context_confidence": max(ctx.values())}
        out.update({f"p_{e}": p.get(e, 0.0) for e in EMOTIONS})
        out.update({f"ctx_p_{e}": ctx.get(e, 0.0) for e in EMOTIONS})
        return out

    frame = pd.DataFrame([{"utterance_id": u, "session_id": s, "start_s": a, "end_s": b, "source_uri": f"file:///x/{s}.wav",
                           "content_hash": u, "participant_id": "P1"} for u, s, a, b, _p, _c in utts])
    predictions = pd.DataFrame([row(u, "v1", p, c) for u, _s, _a, _b, p, c in utts]
                               + [row(u, "v0", {"happy": 1.0}, {"happy": 1.0}) for u, *_ in utts])
    with warehouse.writing(path, settings=settings) as con:
        warehouse.load_survey(con, survey, key="k")
        assert warehouse.load_utterances(con, frame, key="k").inserted == len(utts)
        warehouse.record_model_version(con, "v0", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        warehouse.record_model_version(con, "v1", created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
        warehouse.promote_model(con, "v1")
        assert warehouse.load_predictions(con, predictions).inserted == 2 * len(utts)
    return pd.DataFrame(
        [("A", 0.0, 2.0, "neutral", "male"), ("A", 3.0, 5.0, "angry", "female"), ("A", 6.0, 8.0, "sad", "male"),
         ("A", 9.0, 11.0, "happy", "female"), ("B", 0.0, 2.0, "angry", "male"), ("B", 3.0, 5.0, "neutral", "female")],
        columns=["session_id", "start_s", "end_s", "emotion", "gender"],
    )


def test_score_warehouse_gives_the_hand_computed_figures(tmp_path, settings):
    from ser_pipeline.evaluation.sessions import score_warehouse

    path = tmp_path / "hand.duckdb"
    truth = _hand_made_warehouse(path, settings)
    # By hand, clip by clip (clip label = argmax of its utterances' mean probabilities):
    #   raw:     A0-2 neutral ok | A3-5 angry -> sad (mean .35/.65) | A6-8 sad ok | A9-11 no utterance
    #            | B0-2 angry -> neutral | B3-5 neutral ok (u6 overlaps B0-2 by 0.5 s, B3-5 by 2 s)
    #   context: neutral ok | angry ok (mean .65/.35) | sad ok | - | angry ok | neutral -> calm
    # UAR over neutral, sad, angry: raw (1 + 1 + 0)/3; context (1/2 + 1 + 1)/3.
    expected = {
        "model_version": "v1", "accuracy": 3 / 5, "uar": 2 / 3, "context_accuracy": 4 / 5, "context_uar": 5 / 6,
        "uar_by_gender": {"female": 1 / 2, "male": 2 / 3}, "context_uar_by_gender": {"female": 1 / 2, "male": 1.0},
        "utterance_accuracy": 4 / 6, "utterance_context_accuracy": 5 / 6,
        "n_truth_clips": 6, "n_labelled": 5, "n_unlabelled": 1, "n_utterances": 7, "n_utterances_labelled": 7,
        "n_unmatched_utterances": 1, "labels": ["neutral", "sad", "angry"],
    }
    for version in (None, "v1"):  # the promoted model by default, or named
        got = score_warehouse(path, truth, model_version=version, settings=settings)
        assert set(got) == set(expected)
        for key, want in expected.items():
            assert got[key] == (pytest.approx(want) if isinstance(want, (float, dict)) else want), key
    older = score_warehouse(path, truth, model_version="v0", settings=settings)  # everything "happy": nothing right
    assert older["model_version"] == "v0" and older["accuracy"] == older["uar"] == older["context_uar"] == 0.0
    nothing = score_warehouse(path, truth, model_version="v9", settings=settings)  # a model that labelled nothing
    assert nothing["n_labelled"] == 0 and nothing["n_unlabelled"] == 6 and np.isnan(nothing["uar"])


@pytest.mark.slow
def test_evaluate_sessions_labels_or_counts_every_clip_and_leaves_the_callers_stores_alone(tmp_path, tmp_path_factory, clips):
    from ser_pipeline.evaluation.sessions import evaluate_sessions
    from ser_pipeline.settings import Settings, override

    registry_url, version = shared_champion(tmp_path_factory)
    settings = override(Settings(), registry_url=registry_url)  # the test's own archive/warehouse from conftest
    subset = [c for c in clips if c.path.endswith("_01.wav")]  # 24 clips: 3 sessions of 8
    result = evaluate_sessions(settings, subset, tmp_path / "eval", speakers_per_session=3, utterances_per_session=8)

    assert result["run_status"] == "completed", result["run"]
    assert result["model_version"] == version and result["condition"] == "reverb"
    assert result["n_truth_clips"] == len(subset) == result["n_labelled"] + result["n_unlabelled"]
    assert result["n_labelled"] > 0 and result["utterances_labelled"] == result["n_utterances_labelled"] == result["n_utterances"]
    for key in ("accuracy", "uar", "context_accuracy", "context_uar", "utterance_accuracy", "utterance_context_accuracy",
                *(f"{p}uar_by_gender" for p in ("", "context_"))):
        values = result[key].values() if isinstance(result[key], dict) else [result[key]]
        assert all(0.0 <= v <= 1.0 for v in values), (key, result[key])
    assert set(result["uar_by_gender"]) == {c.gender for c in subset}
    # The same accuracy computed independently: every clip is one turn, so one utterance with its exact span.
    import duckdb

    con = duckdb.connect(result["warehouse_path"], read_only=True)
    stored = con.execute("SELECT session_id, round(start_s, 3) AS start_s, label, context_label "
                         "FROM utterances JOIN predictions USING (utterance_id)").df()
    con.close()
    truth = pd.read_csv(tmp_path / "eval" / "archive" / "EVAL" / "_truth.csv").assign(start_s=lambda t: t["start_s"].round(3))
    merged = truth.merge(stored, on=["session_id", "start_s"], validate="one_to_one")
    assert len(merged) == len(subset)
    assert result["accuracy"] == pytest.approx((merged["label"] == merged["emotion"]).mean())
    assert result["context_accuracy"] == pytest.approx((merged["context_label"] == merged["emotion"]).mean())
    assert result["warehouse_path"].startswith(str(tmp_path / "eval"))
    assert not settings.warehouse_path.exists()  # the caller's warehouse was never opened
    assert not (tmp_path / "archive").exists()
    with pytest.raises(FileExistsError):  # a second run into the same folder would not be fresh
        evaluate_sessions(settings, subset, tmp_path / "eval")
