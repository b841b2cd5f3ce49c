"""Every analysts' query in sql/queries runs on a loaded warehouse and matches an answer
computed independently with pandas from the frames that were loaded."""

from __future__ import annotations

import re
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
    "quotes": {"survey": "S1", "label": "negative", "limit": "7"},
    "search_transcripts": {"pattern": "EXPENSIVE"},
    "transcript_coverage": {"survey": "S1"},
    "negative_words": {"survey": "S1", "min_count": "2"},
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
    if name == "quotes":
        want = _quotes(data)
        want = want[want["is_negative"]].sort_values(["confidence", "spoken_at", "utterance_id"], ascending=[False, True, True]).head(7)
        return want, QUOTE_COLUMNS
    if name == "search_transcripts":
        want = _quotes(data)
        want = want[want["text"].str.lower().str.contains("expensive")].sort_values(["recorded_at", "session_id", "utterance_index"])
        return want, ["survey_id"] + QUOTE_COLUMNS
    if name == "transcript_coverage":
        return _coverage(data), ["session_id", "n_utterances", "n_transcribed", "n_empty", "empty_reasons", "n_not_transcribed",
                                 "n_redacted", "languages", "transcript_models"]
    if name == "negative_words":
        return _negative_words(data, min_count=2), NEGATIVE_WORDS_COLUMNS
    if name == "model_versions":
        n_s2 = data.other_utterances
        assert n_s2 > 0
        want = pd.DataFrame({
            "model_version": ["v1", "v2"], "is_current": [False, True],
            "n_predictions": [len(data.v1), len(data.v2) + n_s2],
        })
        return want, list(want.columns)
    raise AssertionError(f"no known answer for query {name}; add one to {__file__}")


# --------------------------------------------------------------------------------------------
# Known answers for the quote queries, from the frames loaded (tests/_warehouse_data.py)

QUOTE_COLUMNS = ["session_id", "utterance_index", "question", "participant_key", "segment", "start_s", "label", "confidence",
                 "context_label", "text", "language", "n_redacted"]
NEGATIVE_WORDS_COLUMNS = ["question", "rank", "word", "n_in_negative", "n_negative_utterances", "n_in_baseline", "negative_words",
                          "baseline_words", "prior_count", "log_odds", "z"]
# The stop-words among the words of the test transcripts (test_words_macro checks the macro agrees on every word there).
STOP_IN_TEXTS = {"a", "about", "all", "and", "at", "but", "for", "i", "is", "it", "it's", "like", "me", "of", "the", "to", "we", "what", "when"}


def _quotes(data: Loaded) -> pd.DataFrame:
    """The current model's labelled utterances with the current transcription model's text, empty ones left out."""
    exp = data.expected().merge(data.transcripts, on="utterance_id")
    return exp[exp["empty_reason"].isna()]


def _coverage(data: Loaded) -> pd.DataFrame:
    t = data.utterances[["utterance_id", "session_id"]].merge(data.transcripts, on="utterance_id", how="left")
    t["has_words"] = t["model"].notna() & t["empty_reason"].isna()

    def row(session, g):
        reasons = g["empty_reason"].dropna().value_counts()
        return {"session_id": session, "n_utterances": len(g), "n_transcribed": int(g["has_words"].sum()),
                "n_empty": int(g["empty_reason"].notna().sum()),
                "empty_reasons": "; ".join(f"{r}: {n}" for r, n in reasons.items()) if len(reasons) else None,
                "n_not_transcribed": int(g["model"].isna().sum()), "n_redacted": int(g["n_redacted"].fillna(0).sum()),
                "languages": ", ".join(sorted(g["language"].dropna().unique())) or None,
                "transcript_models": ", ".join(sorted(g["model"].dropna().unique())) or None}

    rows = [row(session, g) for session, g in t.groupby("session_id")]  # s1..s5 sort as they were recorded
    return pd.DataFrame(rows + [row(None, t)])


def _words(text: str) -> list[str]:
    """The tokeniser of sql/views.sql's words(), again in Python."""
    text = re.sub(r"\[[A-Z_]+\]", " ", text.replace("’", "'")).lower()
    tokens = [w.strip("'") for w in re.split(r"[^\w']+", text)]
    return [w for w in tokens if len(w) >= 2 and re.search(r"[^\W\d_]", w) and w not in STOP_IN_TEXTS]


def _negative_words(data: Loaded, min_count: int, baseline: str = "question", limit: int = 10) -> pd.DataFrame:
    """Monroe et al.'s log-odds with the survey's word counts as the prior, counted with pandas."""
    quotes = _quotes(data)
    words = pd.DataFrame([(r.utterance_id, r.question, r.is_negative, w) for r in quotes.itertuples() for w in _words(r.text)],
                         columns=["utterance_id", "question", "is_negative", "word"])
    prior = words["word"].value_counts()
    a_0 = len(words)
    rows = []
    for question, g in words[words["question"].notna()].groupby("question"):
        negative = g[g["is_negative"]]
        n_a = len(negative)
        n_b = len(g) - n_a if baseline == "question" else a_0 - n_a
        for word, y_a in negative["word"].value_counts().items():
            if y_a < min_count:
                continue
            y_b = int((g["word"][~g["is_negative"]] == word).sum()) if baseline == "question" else int(prior[word] - y_a)
            a_w = int(prior[word])
            delta = np.log((y_a + a_w) / (n_a + a_0 - y_a - a_w)) - np.log((y_b + a_w) / (n_b + a_0 - y_b - a_w))
            z = delta / np.sqrt(1 / (y_a + a_w) + 1 / (y_b + a_w))
            rows.append({"question": question, "word": word, "n_in_negative": y_a,
                         "n_negative_utterances": negative.loc[negative["word"] == word, "utterance_id"].nunique(),
                         "n_in_baseline": y_b, "negative_words": n_a, "baseline_words": n_b, "prior_count": a_w, "log_odds": delta, "z": z})
    out = pd.DataFrame(rows)
    out = out[out["z"] > 0].sort_values(["question", "z", "word"], ascending=[True, False, True])
    out["rank"] = out.groupby("question").cumcount() + 1
    return out[out["rank"] <= limit]


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


# --------------------------------------------------------------------------------------------
# Quotes: transcripts beside the labels (tests/_warehouse_data.transcript_batches)


def _run(data: Loaded, name: str, settings, **params) -> pd.DataFrame:
    return warehouse.run_named_query(data.path, name, params, settings=settings)


def test_words_macro_drops_placeholders_stop_words_and_short_tokens(loaded: Loaded, settings):
    from _warehouse_data import ANSWERS, APOSTROPHE_TEXT, HTML_TEXT, REDACTED_TEXT

    def words(text: str) -> list[str]:
        return warehouse.run_query(loaded.path, "SELECT words($t) AS w", {"t": text}, settings=settings)["w"].iloc[0].tolist()

    assert words(REDACTED_TEXT) == ["mail", "less", "expensive"]  # [EMAIL] is no word, nor are me, at, when, it's
    assert words("Über-teuer! I’m NOT paying 10 € for [PHONE] x [MUSIC] o'clock 2nd") == ["über", "teuer", "not", "paying", "o'clock", "2nd"]
    assert words("") == [] and words("[URL] [CARD]") == []
    # The macro and this file's Python tokeniser agree on every text the tests load.
    for text in [t for texts in ANSWERS.values() for t in texts] + [HTML_TEXT, APOSTROPHE_TEXT, REDACTED_TEXT]:
        assert words(text) == _words(text), text


def test_transcripts_view_keeps_the_latest_transcription_per_utterance(loaded: Loaded, settings):
    from _warehouse_data import OLD_TRANSCRIPT_MODEL, TRANSCRIPT_MODEL

    two = loaded.special["two_models"]
    stored = warehouse.run_query(loaded.path, "SELECT model, text FROM transcripts WHERE utterance_id = $u ORDER BY transcribed_at",
                                 {"u": two}, settings=settings)
    assert stored["model"].tolist() == [OLD_TRANSCRIPT_MODEL, TRANSCRIPT_MODEL]  # both kept ...
    view = warehouse.run_query(loaded.path, "SELECT * FROM v_transcripts ORDER BY utterance_id", settings=settings)
    assert len(view) == len(loaded.transcripts) == len(loaded.utterances) - 1  # ... one per utterance; one untranscribed
    row = view[view["utterance_id"] == two].iloc[0]
    # ... the later one wins, although its name sorts first
    assert (row["transcript_model"], row["n_transcripts"]) == (TRANSCRIPT_MODEL, 2) and TRANSCRIPT_MODEL < OLD_TRANSCRIPT_MODEL
    assert row["text"] == loaded.transcripts.set_index("utterance_id").loc[two, "text"]
    empty = view[view["utterance_id"] == loaded.special["empty"]].iloc[0]
    assert (empty["is_empty"], empty["empty_reason"], empty["text"]) == (True, "no speech", "")
    assert view["is_empty"].sum() == 1


def test_quotes_view_carries_what_an_analyst_quotes(loaded: Loaded, settings):
    quotes = warehouse.run_query(loaded.path, "SELECT * FROM v_quotes", settings=settings)
    assert {"survey_id", "session_id", "recorded_at", "week", "question", "segment", "start_s", "end_s", "label", "confidence",
            "context_label", "text", "language", "is_empty", "empty_reason", "n_redacted"} <= set(quotes.columns)
    assert len(quotes) == len(loaded.transcripts)  # every transcribed utterance has a v2 label; the empty one is there, marked
    exp = loaded.expected().set_index("utterance_id")
    got = quotes.set_index("utterance_id")
    assert (got["label"] == exp.loc[got.index, "label"]).all() and (got["model_version"] == "v2").all()
    redacted = got.loc[loaded.special["redacted"]]
    assert "[EMAIL]" in redacted["text"] and redacted["n_redacted"] == 1
    v1 = warehouse.run_query(loaded.path, "SELECT utterance_id, label FROM v_quotes", model_version="v1", settings=settings)
    assert len(v1) == len(quotes)  # --model / ser_model_version: the same quotes with another model's labels
    assert v1.set_index("utterance_id")["label"].to_dict() == loaded.v1.set_index("utterance_id").loc[v1["utterance_id"], "label"].to_dict()


def test_quotes_filter_by_label_and_question(loaded: Loaded, settings):
    every = _quotes(loaded)
    assert len(_run(loaded, "quotes", settings, survey="S1", limit="1000")) == len(every)  # empty left out, no filter by default
    assert loaded.special["empty"] in set(loaded.transcripts["utterance_id"]) and "" not in set(_run(loaded, "quotes", settings, survey="S1")["text"])
    got = _run(loaded, "quotes", settings, survey="S1", label="angry,sad", question="price")
    want = every[every["label"].isin(["angry", "sad"]) & (every["question"] == "price")]
    want = want.sort_values(["confidence", "spoken_at", "utterance_id"], ascending=[False, True, True])
    _compare(got, want, QUOTE_COLUMNS)
    assert len(got) >= 2
    negative = _run(loaded, "quotes", settings, survey="S1", label="negative", question="price")
    assert set(negative["label"]) <= NEGATIVE_EMOTIONS and len(negative) == (every["is_negative"] & (every["question"] == "price")).sum()
    assert list(negative["confidence"]) == sorted(negative["confidence"], reverse=True)
    assert len(_run(loaded, "quotes", settings, survey="S1", limit="3")) == 3
    with pytest.raises(Exception, match="label must be an emotion .* not angy"):
        _run(loaded, "quotes", settings, survey="S1", label="angy")
    assert _run(loaded, "quotes", settings, survey="S2").empty


def test_search_is_case_insensitive_with_wildcards_and_binds_the_pattern(loaded: Loaded, settings):
    from _warehouse_data import APOSTROPHE_TEXT, REDACTED_TEXT

    def texts(pattern: str, **params) -> list[str]:
        return _run(loaded, "search_transcripts", settings, pattern=pattern, **params)["text"].tolist()

    every = _quotes(loaded)
    assert set(texts("expensive")) == {t for t in every["text"] if "expensive" in t.lower()} and "Too EXPENSIVE, not worth it" in texts("expensive")
    assert set(texts("fair%cola")) == {t for t in every["text"] if re.search(r"(?i)fair.*cola", t)} == {"A fair price for a cola"}
    assert set(texts("fl_t")) == {t for t in every["text"] if "flat" in t.lower()}
    assert sorted(set(texts("it's"))) == sorted({APOSTROPHE_TEXT, REDACTED_TEXT})  # a quote character is just a character
    assert texts("[EMAIL]") == [REDACTED_TEXT]
    assert len(texts("", limit="1000")) == len(every)  # everything with words; never the empty transcript
    for hostile in ["x' OR '1'='1", "%' OR 1=1 --", "'; DROP TABLE transcripts; --"]:
        assert texts(hostile) == []
    assert warehouse.run_query(loaded.path, "SELECT count(*) AS n FROM transcripts", settings=settings)["n"].iloc[0] == len(loaded.transcripts) + 1
    assert set(texts("^(too|far) ", mode="regex")) == {t for t in every["text"] if re.match(r"(?i)(too|far) ", t)}
    assert texts("fl.t", survey="S1", mode="regex") == texts("fl_t") and texts("flat", survey="S2") == []
    with pytest.raises(Exception, match="mode must be ilike or regex, not glob"):
        texts("flat", mode="glob")
    got = _run(loaded, "search_transcripts", settings, pattern="flat")
    assert list(got["recorded_at"]) == sorted(got["recorded_at"])


def test_negative_words_rank_by_the_smoothed_log_odds(loaded: Loaded, settings):
    got = _run(loaded, "negative_words", settings, survey="S1", min_count="2")
    top = got[got["rank"] == 1].set_index("question")["word"].to_dict()
    assert top == {"packaging": "awful", "price": "expensive", "taste": "flat"}  # the words written into negative answers
    # By hand: "expensive" is in all 6 negative answers to price (21 words), in none of its other answers (15 words),
    # 6 times in the survey's 180 words: log_odds = ln(12 / (21 + 180 - 12)) - ln(6 / (15 + 180 - 6)) = ln 2,
    # z = ln 2 / sqrt(1/12 + 1/6) = 2 ln 2.
    expensive = got[got["word"] == "expensive"].iloc[0]
    assert (expensive["n_in_negative"], expensive["negative_words"], expensive["n_in_baseline"], expensive["baseline_words"],
            expensive["prior_count"]) == (6, 21, 0, 15, 6)
    assert expensive["log_odds"] == pytest.approx(np.log(2), abs=1e-4) and expensive["z"] == pytest.approx(2 * np.log(2), abs=1e-4)
    packaging = got[got["question"] == "packaging"]
    assert set(packaging["word"].head(3)) == {"awful", "broke", "plastic"} and packaging["z"].head(3).nunique() == 1  # a tie, by word
    assert packaging["word"].head(3).tolist() == ["awful", "broke", "plastic"]
    assert (got.groupby("question")["z"].apply(lambda z: z.is_monotonic_decreasing)).all() and (got["z"] > 0).all()
    assert (got["n_in_negative"] >= 2).all() and "price" not in set(got["word"])  # the topic's own word cancels out ...
    survey = _run(loaded, "negative_words", settings, survey="S1", min_count="2", baseline="survey")
    _compare(survey, _negative_words(loaded, min_count=2, baseline="survey"), NEGATIVE_WORDS_COLUMNS)
    assert "price" in set(survey[survey["question"] == "price"]["word"])  # ... against the whole survey it does not
    one = _run(loaded, "negative_words", settings, survey="S1", min_count="1", limit="100")
    assert "mail" in set(one["word"]) and "email" not in set(one["word"])  # a redaction is no word
    assert (one.groupby("question")["rank"].max() > 3).all() and len(_run(loaded, "negative_words", settings, survey="S1", min_count="1", limit="2")) == 6
    with pytest.raises(Exception, match="baseline must be question or survey"):
        _run(loaded, "negative_words", settings, survey="S1", baseline="everything")


def test_empty_and_missing_transcripts_are_counted_not_quoted(loaded: Loaded, settings):
    coverage = _run(loaded, "transcript_coverage", settings, survey="S1")
    total = coverage[coverage["session_id"].isna()].iloc[0]
    assert (total["n_utterances"], total["n_transcribed"], total["n_empty"], total["n_not_transcribed"], total["n_redacted"]) == (
        len(loaded.utterances), len(loaded.utterances) - 2, 1, 1, 1)
    assert total["empty_reasons"] == "no speech: 1"
    assert coverage["session_id"].tolist()[:-1] == sorted(s.session_id for s in loaded.survey.sessions)
    words = warehouse.run_query(loaded.path, "SELECT DISTINCT utterance_id FROM v_quote_words", settings=settings)["utterance_id"]
    assert loaded.special["empty"] not in set(words) and loaded.special["untranscribed"] not in set(words)
