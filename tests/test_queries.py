"""Every analysts' query in sql/queries runs on a loaded warehouse and matches an answer
computed independently with pandas from the frames that were loaded."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from _warehouse_data import Loaded, _loaded_template, loaded, predictions_frame, utterances_frame, write_survey  # noqa: F401
from ser_pipeline import warehouse
from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.archive.manifest import read_survey

PARAMS = {
    "emotion_share_by_week": {"survey": "S1"},
    "negative_trend": {"survey": "S1"},
    "emotion_by_question": {"survey": "S1"},
    "emotion_by_segment": {"survey": "S1", "attribute": "gender"},
    "session_arc": {"session": "s3"},
    "top_moments": {"survey": "S1", "limit": "5"},
    "review_queue": {"survey": "S1", "max_confidence": "0.6", "limit": "7"},
    "model_label_changes": {"old_version": "v1", "new_version": "v2"},
    "dominant_emotion_per_session": {"survey": "S1"},
    "negative_share_by_market": {"survey": "S1"},
    "model_versions": {},
}


@pytest.fixture
def two_surveys(loaded: Loaded, tmp_path, settings) -> Loaded:
    """The loaded warehouse plus a second survey, so every survey filter has to work."""
    other = read_survey(write_survey(tmp_path / "archive", "S2", seed=7, session_prefix="b-").as_uri())
    utts = utterances_frame(other)
    with warehouse.writing(loaded.path, settings=settings) as con:
        warehouse.load_survey(con, other, key=settings.pseudonym_key)
        warehouse.load_utterances(con, utts, key=settings.pseudonym_key)
        warehouse.load_predictions(con, predictions_frame(utts, "v2", seed=8))
    loaded.other_utterances = len(utts)
    return loaded


P_COLUMNS = [f"p_{e}" for e in EMOTIONS]
NEGATIVE_P = [f"p_{e}" for e in sorted(NEGATIVE_EMOTIONS)]


def _wilson(frame, k, n, prefix):
    """scipy's 95% Wilson interval of k/n as ``<prefix>_low`` and ``<prefix>_high``."""
    from scipy.stats import binomtest

    intervals = [binomtest(int(a), int(b)).proportion_ci(0.95, method="wilson") for a, b in zip(frame[k], frame[n])]
    frame[f"{prefix}_low"] = [ci.low for ci in intervals]
    frame[f"{prefix}_high"] = [ci.high for ci in intervals]
    return frame


def _negative(frame, by):
    """Per group: n_utterances, n_negative, negative_share with its interval and expected_negative_share."""
    frame = frame.assign(negative_probability=frame[NEGATIVE_P].sum(axis=1))
    out = frame.groupby(by).agg(n_utterances=("label", "size"), n_negative=("is_negative", "sum"),
                                expected_negative_share=("negative_probability", "mean")).reset_index()
    out["negative_share"] = out["n_negative"] / out["n_utterances"]
    return _wilson(out, "n_negative", "n_utterances", "negative_share")


def _share(frame, by, total):
    counts = frame.groupby(by + ["label"]).size().rename("n_utterances").reset_index()
    counts[total] = counts.groupby(by)["n_utterances"].transform("sum")
    counts["share"] = counts["n_utterances"] / counts[total]
    means = frame.groupby(by)[P_COLUMNS].mean().reset_index().melt(id_vars=by, var_name="label", value_name="expected_share")
    means["label"] = means["label"].str.removeprefix("p_")
    return _wilson(counts.merge(means, on=by + ["label"]), "n_utterances", total, "share")


SHARE = ["share", "share_low", "share_high", "expected_share"]
NEGATIVE = ["n_negative", "negative_share", "negative_share_low", "negative_share_high", "expected_negative_share"]


def _negative_trend(exp):
    weekly = _negative(exp, "week")
    weekly["change_from_previous"] = weekly["negative_share"].diff()
    weekly["weeks_since_previous"] = [np.nan] + [(b - a).days // 7 for a, b in zip(weekly["week"], weekly["week"][1:])]
    return weekly


def _by_question(exp):
    exp = exp[exp["question"].notna()]
    out = _negative(exp, "question")
    out["dominant_emotion"] = [sorted(c[c == c.max()].index)[0] for c in (g["label"].value_counts() for _, g in exp.groupby("question"))]
    return out.sort_values(["negative_share", "question"], ascending=[False, True])


def _arc(exp, session):
    arc = exp[exp["session_id"] == session].sort_values("utterance_index").copy()
    arc["negative_probability"] = arc[NEGATIVE_P].sum(axis=1)
    arc["n_utterances_so_far"] = range(1, len(arc) + 1)
    arc["n_negative_so_far"] = arc["is_negative"].cumsum()
    arc["running_negative_share"] = arc["is_negative"].astype(float).expanding().mean()
    arc["expected_running_negative_share"] = arc["negative_probability"].expanding().mean()
    return _wilson(arc, "n_negative_so_far", "n_utterances_so_far", "running_negative_share")


def _dominant_per_session(exp):
    rows = []
    for session, group in exp.groupby("session_id"):
        counts = group["label"].value_counts()
        dominant = sorted(counts[counts == counts.max()].index)[0]
        rows.append({"session_id": session, "recorded_at": group["recorded_at"].iloc[0], "dominant_emotion": dominant,
                     "n_dominant": counts.max(), "dominant_share": counts.max() / len(group),
                     "expected_dominant_share": group[f"p_{dominant}"].mean()})
    out = pd.DataFrame(rows).merge(_negative(exp, "session_id"), on="session_id")
    out = _wilson(out, "n_dominant", "n_utterances", "dominant_share")
    return out.sort_values(["recorded_at", "session_id"])


def _by_market(exp):
    out = _negative(exp, "market").merge(
        exp.groupby("market").agg(n_sessions=("session_id", "nunique"), mean_confidence=("confidence", "mean")).reset_index(), on="market")
    return out.sort_values(["negative_share", "market"], ascending=[False, True])


def _expected(name: str, data: Loaded) -> tuple[pd.DataFrame, list[str]]:
    """The known answer for query ``name`` and the columns to compare, in the query's order."""
    exp = data.expected()
    if name == "emotion_share_by_week":
        want = _share(exp, ["week"], "week_utterances").sort_values(["week", "share", "label"], ascending=[True, False, True])
        return want, ["week", "label", "n_utterances", "week_utterances"] + SHARE
    if name == "negative_trend":
        return _negative_trend(exp), ["week", "n_utterances"] + NEGATIVE + ["weeks_since_previous", "change_from_previous"]
    if name == "emotion_by_question":
        return _by_question(exp), ["question", "n_utterances", "dominant_emotion"] + NEGATIVE
    if name == "emotion_by_segment":
        want = _share(exp.rename(columns={"gender": "value"}), ["value"], "group_utterances")
        want = want.sort_values(["value", "share", "label"], ascending=[True, False, True])
        return want, ["value", "label", "n_utterances", "group_utterances"] + SHARE
    if name == "session_arc":
        return _arc(exp, "s3"), ["utterance_index", "start_s", "end_s", "participant_key", "label", "confidence", "negative_probability",
                                 "n_utterances_so_far", "n_negative_so_far", "running_negative_share", "running_negative_share_low",
                                 "running_negative_share_high", "expected_running_negative_share"]
    if name == "top_moments":
        want = exp[~exp["label"].isin(["neutral", "calm"])].sort_values(["confidence", "utterance_id"], ascending=[False, True]).head(5)
        want = want.assign(rank=range(1, len(want) + 1))
        return want, ["rank", "session_id", "utterance_index", "label", "confidence", "start_s"]
    if name == "review_queue":
        want = exp[exp["confidence"] < 0.6].sort_values(["confidence", "utterance_id"]).head(7)
        return want, ["session_id", "utterance_index", "start_s", "label", "confidence", "context_label"]
    if name == "model_label_changes":
        both = data.v1.merge(data.v2, on="utterance_id", suffixes=("_old", "_new"))
        both["change"] = both["confidence_new"] - both["confidence_old"]
        want = both.groupby(["label_old", "label_new"]).agg(n_utterances=("change", "size"), mean_confidence_change=("change", "mean")).reset_index()
        want.columns = ["old_label", "new_label", "n_utterances", "mean_confidence_change"]
        return want.sort_values(["n_utterances", "old_label", "new_label"], ascending=[False, True, True]), list(want.columns)
    if name == "dominant_emotion_per_session":
        return _dominant_per_session(exp), ["session_id", "dominant_emotion", "n_dominant", "dominant_share", "dominant_share_low",
                                            "dominant_share_high", "expected_dominant_share", "n_utterances"] + NEGATIVE
    if name == "negative_share_by_market":
        return _by_market(exp), ["market", "n_sessions", "n_utterances"] + NEGATIVE + ["mean_confidence"]
    if name == "model_versions":
        n_s2 = data.other_utterances
        assert n_s2 > 0
        want = pd.DataFrame({
            "model_version": ["v1", "v2"], "is_current": [False, True],
            "n_predictions": [len(data.v1), len(data.v2) + n_s2],
        })
        return want, list(want.columns)
    raise AssertionError(f"no known answer for query {name}; add one to {__file__}")


def _compare(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    assert len(got) == len(want), f"{len(got)} rows, expected {len(want)}"
    for column in columns:
        g, w = got[column].reset_index(drop=True), want[column].reset_index(drop=True)
        if pd.api.types.is_float_dtype(w) and not pd.api.types.is_bool_dtype(w):
            np.testing.assert_allclose(g.astype(float), w.astype(float), atol=6e-5, err_msg=column)
        else:
            g = g.dt.date if pd.api.types.is_datetime64_any_dtype(g) and not pd.api.types.is_datetime64_any_dtype(w) else g
            assert [str(x) for x in g] == [str(x) for x in w], column


def test_every_query_file_has_a_question_and_a_known_answer():
    queries = warehouse.named_queries()
    assert set(queries) == set(PARAMS)
    for query in queries.values():
        assert query.question.endswith("?"), query.name
        assert query.question[0].isupper(), query.name


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_query_matches_known_answer(two_surveys, name, settings):
    got = warehouse.run_named_query(two_surveys.path, name, PARAMS[name], settings=settings)
    want, columns = _expected(name, two_surveys)
    _compare(got, want, columns)
    for share in _shares(got.columns):  # every share it prints comes with its interval and expected share
        assert {f"{share}_low", f"{share}_high", f"expected_{share}"} <= set(got.columns), (name, share)
        assert set(columns) >= {share, f"{share}_low", f"{share}_high", f"expected_{share}"}, (name, share)  # and they are checked


def _shares(columns) -> list[str]:
    return [c for c in columns if c.endswith("share") and not c.startswith("expected_")]


def test_query_defaults_and_parameter_errors(two_surveys, settings):
    by_segment = warehouse.run_named_query(two_surveys.path, "emotion_by_segment", {"survey": "S1"}, settings=settings)
    assert set(by_segment["value"]) == {"loyal", "lapsed", "new"}
    with pytest.raises(ValueError, match="needs --param survey"):
        warehouse.run_named_query(two_surveys.path, "emotion_share_by_week", {}, settings=settings)
    with pytest.raises(ValueError, match="no parameter"):
        warehouse.run_named_query(two_surveys.path, "emotion_share_by_week", {"survey": "S1", "week": "1"}, settings=settings)
    with pytest.raises(KeyError, match="no query named"):
        warehouse.run_named_query(two_surveys.path, "nope", settings=settings)
    assert warehouse.run_named_query(two_surveys.path, "emotion_share_by_week", {"survey": "x' OR '1'='1"}, settings=settings).empty
