"""Scoring stored labels against a generated archive's truth."""

from __future__ import annotations

import pandas as pd

from ser_pipeline import synthetic as synth

from ser_pipeline.evaluation import truth

from ser_pipeline import warehouse
from tests._warehouse_data import _loaded_template, loaded  # noqa: F401  (fixtures)


def _truth_from(utterances: pd.DataFrame, predictions: pd.DataFrame, flip_every: int) -> pd.DataFrame:
    """A truth table equal to the stored labels except every ``flip_every``-th turn."""
    merged = utterances.merge(predictions, on="utterance_id").reset_index(drop=True)
    emotion = merged["label"].where(merged.index % flip_every != 0, "not-an-emotion")
    return pd.DataFrame({"session_id": merged["session_id"], "start_s": merged["start_s"] + 0.01, "emotion": emotion})


def test_agreement_counts_matching_turns_of_the_current_model(loaded, settings):
    # v2 is the newest model, so the views (and the score) use its labels.
    table = _truth_from(loaded.utterances, loaded.v2, flip_every=4)
    expected = (table["emotion"] != "not-an-emotion").mean()
    expected_ctx = (loaded.utterances.merge(loaded.v2, on="utterance_id").reset_index(drop=True)
                    .pipe(lambda m: (m["context_label"] == table["emotion"]).mean()))
    con = warehouse.connect(loaded.path, read_only=True, settings=settings)
    try:
        score = truth.agreement(con, table)
    finally:
        con.close()
    assert score.model_version == "v2"
    assert score.matched == score.utterances == len(loaded.utterances)
    assert abs(score.accuracy - expected) < 1e-9
    assert abs(score.context_accuracy - expected_ctx) < 1e-9


def test_turns_beyond_the_tolerance_are_not_matched(loaded, settings):
    table = _truth_from(loaded.utterances, loaded.v2, flip_every=10**9)
    table["start_s"] += 0.137  # well past the 0.05 s tolerance, short of any neighbouring turn
    con = warehouse.connect(loaded.path, read_only=True, settings=settings)
    try:
        score = truth.agreement(con, table)
    finally:
        con.close()
    assert score.matched == 0


def test_load_truth_reads_every_survey_of_a_generated_archive(tmp_path):
    url = (tmp_path / "archive").as_uri()
    turns = synth.generate_archive(url, n_surveys=2, sessions_per_survey=1, participants_per_session=2,
                                   utterances_per_session=3, seed=3)
    loaded_truth = truth.load_truth(url)
    assert len(loaded_truth) == len(turns) == 6
    assert sorted(loaded_truth["survey_id"].unique()) == ["SV01", "SV02"]
