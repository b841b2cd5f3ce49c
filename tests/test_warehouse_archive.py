"""Integration: a generated archive (synth.generate_archive) read by manifest.py, loaded into
the warehouse with predictions built in the test, re-loaded, and a second model version added;
views and queries checked against the archive's own truth."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from ser_pipeline import storage

from ser_pipeline import warehouse
from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.archive.manifest import read_archive

synth = pytest.importorskip("ser_pipeline.synthetic", reason="synth.generate_archive (branch corpora-synth) is not merged yet")


def _utterances(survey) -> pd.DataFrame:
    rows = []
    for session in survey.sessions:
        recording_hash = storage.content_hash(storage.read_bytes(session.audio_url))
        for turn in session.turns:
            uid = hashlib.sha256(f"{recording_hash}:{round(turn.start_s * 1000)}:{round(turn.end_s * 1000)}".encode()).hexdigest()[:32]
            rows.append({"utterance_id": uid, "session_id": session.session_id, "participant_id": turn.participant_id,
                         "start_s": turn.start_s, "end_s": turn.end_s, "source_uri": session.audio_url,
                         "content_hash": uid, "question": turn.question})
    return pd.DataFrame(rows)


def _oracle(utts: pd.DataFrame, truth: pd.DataFrame, version: str, accuracy: float, seed: int) -> pd.DataFrame:
    """Predictions that are right with probability ``accuracy`` (labels from the archive's truth)."""
    rng = np.random.default_rng(seed)
    frame = utts.merge(truth[["session_id", "start_s", "emotion"]], on=["session_id", "start_s"], how="left")
    assert frame["emotion"].notna().all()
    wrong = rng.random(len(frame)) > accuracy
    labels = np.where(wrong, rng.choice(EMOTIONS, len(frame)), frame["emotion"])
    out = pd.DataFrame({"utterance_id": frame["utterance_id"], "model_version": version, "label": labels,
                        "confidence": rng.uniform(0.3, 0.99, len(frame))})
    for e in EMOTIONS:
        out[f"p_{e}"] = np.where(out["label"] == e, out["confidence"], (1 - out["confidence"]) / (len(EMOTIONS) - 1))
    return out


@pytest.mark.slow
def test_generated_archive_loads_idempotently_and_views_match_truth(tmp_path, settings):
    archive = (tmp_path / "archive").as_uri()
    truth = synth.generate_archive(archive, n_surveys=2, sessions_per_survey=3, participants_per_session=3,
                                   utterances_per_session=8, sidecar="mixed", turn_duration_s=(0.4, 0.8), sample_rate=8000)
    truth["start_s"] = truth["start_s"].astype(float)
    surveys = read_archive(archive)
    assert [s.survey_id for s in surveys] == sorted(truth["survey_id"].unique())
    assert sum(len(s.turns) for sv in surveys for s in sv.sessions) == len(truth)

    utts = pd.concat([_utterances(s) for s in surveys], ignore_index=True)
    v1 = _oracle(utts, truth, "oracle-v1", accuracy=1.0, seed=1)
    v2 = _oracle(utts, truth, "noisy-v2", accuracy=0.6, seed=2)
    path = tmp_path / "wh.duckdb"
    for attempt in range(2):  # the nightly flow re-running the same batch
        with warehouse.writing(path, settings=settings) as con:
            run = warehouse.start_ingest_run(con, flow_run_id="nightly-1")
            results = [warehouse.load_survey(con, s, key=settings.pseudonym_key) for s in surveys]
            results.append(warehouse.load_utterances(con, utts, key=settings.pseudonym_key))
            results.append(warehouse.load_predictions(con, v1, run_id=run))
            warehouse.finish_ingest_run(con, run, n_utterances=len(utts), n_predictions=len(v1))
        inserted = sum(r.inserted for r in results)
        assert inserted == (len(truth.session_id.unique()) + 2 * len(utts) if attempt == 0 else 0)

    # The oracle is current: the weekly share view reproduces the truth's emotion mix.
    truth_week = pd.to_datetime(truth["recorded_at"], utc=True).dt.tz_localize(None)
    truth["week"] = (truth_week.dt.normalize() - pd.to_timedelta(truth_week.dt.weekday, unit="D")).dt.date.astype(str)
    want = truth.groupby(["survey_id", "week", "emotion"]).size().rename("n").reset_index()
    got = warehouse.run_query(path, "SELECT survey_id, CAST(week AS VARCHAR) AS week, label AS emotion, n_utterances AS n FROM v_emotion_share_weekly", settings=settings)
    pd.testing.assert_frame_equal(got.sort_values(["survey_id", "week", "emotion"]).reset_index(drop=True),
                                  want.sort_values(["survey_id", "week", "emotion"]).reset_index(drop=True), check_dtype=False)
    negative = truth.assign(neg=truth["emotion"].isin(NEGATIVE_EMOTIONS)).groupby("survey_id")["neg"].mean()
    by_market = {sv: warehouse.run_named_query(path, "negative_share_by_market", {"survey": sv}, settings=settings) for sv in negative.index}
    for sv, frame in by_market.items():
        assert frame["negative_share"].iloc[0] == pytest.approx(negative[sv], abs=1e-4)

    # A second model version: added beside the first, becomes current, and the comparison shows what moved.
    with warehouse.writing(path, settings=settings) as con:
        assert warehouse.load_predictions(con, v2).inserted == len(utts)
        warehouse.promote_model(con, "noisy-v2")
        counts = dict(con.execute("SELECT model_version, count(*) FROM predictions GROUP BY 1").fetchall())
    assert counts == {"oracle-v1": len(utts), "noisy-v2": len(utts)}
    moved = warehouse.run_named_query(path, "model_label_changes", {"old_version": "oracle-v1", "new_version": "noisy-v2"}, settings=settings)
    assert moved["n_utterances"].sum() == len(utts)
    changed = moved.loc[moved["old_label"] != moved["new_label"], "n_utterances"].sum()
    assert changed == (v1.set_index("utterance_id")["label"] != v2.set_index("utterance_id")["label"]).sum()
    current = warehouse.run_query(path, "SELECT model_version, chosen_by FROM v_current_model", settings=settings)
    assert current.iloc[0].tolist() == ["noisy-v2", "promoted"]

    # Transcripts as the nightly run would write them: a script line per utterance, a price
    # complaint wherever the label is negative (so the negative words have something to find).
    from ser_pipeline.synthetic.spoken import SCRIPT

    negative = v2["label"].isin(NEGATIVE_EMOTIONS).to_numpy()
    texts = [SCRIPT[0] if neg else SCRIPT[1 + i % (len(SCRIPT) - 1)] for i, neg in enumerate(negative)]
    transcripts = pd.DataFrame({"utterance_id": v2["utterance_id"], "model": "whisper-base@test", "text": texts,
                                "language": "en", "language_source": "manifest"})
    with warehouse.writing(path, settings=settings) as con:
        assert warehouse.load_transcripts(con, transcripts).inserted == len(utts)
        assert warehouse.load_transcripts(con, transcripts).inserted == 0

    # Every analysts' query answers on the generated archive too (exact answers: tests/test_queries.py).
    params = {"survey": "SV01", "session": "SV01-S01", "old_version": "oracle-v1", "new_version": "noisy-v2",
              "pattern": "price"}
    for name, query in warehouse.named_queries().items():
        frame = warehouse.run_named_query(path, name, {k: v for k, v in params.items() if k in dict(query.params)}, settings=settings)
        assert not frame.empty, name
