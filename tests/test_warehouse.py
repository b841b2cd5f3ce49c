"""The warehouse: migrations, idempotent loads, model versions, pseudonyms, locking, views."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from _warehouse_data import KEY, PARTICIPANTS, T0, _loaded_template, loaded, predictions_frame  # noqa: F401 (loaded is a fixture)
from ser_pipeline import warehouse
from ser_pipeline.errors import WarehouseBusy
from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.resources import SQL_DIR

def _columns(con) -> list[tuple]:
    return con.execute(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name IN (SELECT table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE') ORDER BY table_name, ordinal_position"
    ).fetchall()


# --------------------------------------------------------------------------------------------
# Schema and migrations


def test_migrations_add_up_to_schema_sql(tmp_path, settings):
    con = warehouse.connect(tmp_path / "a.duckdb", settings=settings)
    assert warehouse.migrate(con) == [m.version for m in warehouse.migrations()]
    assert warehouse.migrate(con) == []  # nothing left to apply
    whole = duckdb.connect()
    whole.execute((SQL_DIR / "schema.sql").read_text())
    assert _columns(con) == _columns(whole)
    tables = {r[0] for r in _columns(con)}
    for table in tables:
        keys = con.execute(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'", [table]
        ).fetchone()[0]
        assert keys == 1, f"{table} has no primary key"


def test_existing_warehouse_upgrades_in_place(tmp_path, settings):
    path = tmp_path / "old.duckdb"
    con = warehouse.connect(path, settings=settings)
    assert warehouse.migrate(con, target=1) == [1]
    con.execute("INSERT INTO model_versions (model_version) VALUES ('old-model')")
    con.close()

    con = warehouse.connect(path, settings=settings)
    assert warehouse.schema_version(con) == 1
    assert warehouse.migrate(con) == [2, 3, 4]
    assert con.execute("SELECT model_version, promoted_at FROM model_versions").fetchall() == [("old-model", None)]
    assert warehouse.current_model(con) == ("old-model", "latest")
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()] == [1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Loading


def _counts(con) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("surveys", "sessions", "participants", "session_participants", "utterances", "predictions", "quarantine")}


def test_loading_the_same_batch_twice_inserts_nothing_twice(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        before = _counts(con)
        assert before["predictions"] == 2 * len(loaded.utterances)
        assert before["sessions"] == len(loaded.survey.sessions)
        assert before["participants"] == len(PARTICIPANTS)
        again = [
            warehouse.load_survey(con, loaded.survey, key=settings.pseudonym_key),
            warehouse.load_utterances(con, loaded.utterances, key=settings.pseudonym_key),
            warehouse.load_predictions(con, loaded.v1),
            warehouse.load_predictions(con, pd.concat([loaded.v2, loaded.v2])),  # duplicates inside a batch too
        ]
        assert _counts(con) == before
    assert [r.inserted for r in again] == [0, 0, 0, 0]
    assert again[1].already_present == len(loaded.utterances)


def test_new_model_version_keeps_old_predictions(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        stored = con.execute("SELECT model_version, count(*) FROM predictions GROUP BY 1 ORDER BY 1").fetchall()
        assert stored == [("v1", len(loaded.utterances)), ("v2", len(loaded.utterances))]
        got = con.execute("SELECT utterance_id, label, confidence, p_angry FROM predictions WHERE model_version = 'v1'").df()
    want = loaded.v1[["utterance_id", "label", "confidence", "p_angry"]]
    merged = want.merge(got, on="utterance_id", suffixes=("", "_db"))
    assert len(merged) == len(want)
    assert (merged["label"] == merged["label_db"]).all()
    np.testing.assert_allclose(merged["p_angry_db"], merged["p_angry"])


def test_current_model_choice_session_variable_pin_promotion_latest(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        assert warehouse.current_model(con) == ("v2", "latest")
        warehouse.promote_model(con, "v1", at=T0 + timedelta(days=2))
        assert warehouse.current_model(con) == ("v1", "promoted")
        warehouse.pin_model(con, "v2", pinned_by="test")
        assert warehouse.current_model(con) == ("v2", "pinned")
        with pytest.raises(KeyError):
            warehouse.pin_model(con, "nope")
        warehouse.pin_model(con, None)
        assert warehouse.current_model(con) == ("v1", "promoted")
    labels_v2 = warehouse.run_query(loaded.path, "SELECT utterance_id, label FROM v_labelled", model_version="v2", settings=settings)
    labels_v1 = warehouse.run_query(loaded.path, "SELECT utterance_id, label FROM v_labelled", settings=settings)
    assert dict(zip(labels_v2.utterance_id, labels_v2.label)) == dict(zip(loaded.v2.utterance_id, loaded.v2.label))
    assert dict(zip(labels_v1.utterance_id, labels_v1.label)) == dict(zip(loaded.v1.utterance_id, loaded.v1.label))


def test_model_with_merged_labels_stores_null_probabilities(loaded, settings):
    merged = tuple(e for e in EMOTIONS if e != "calm")
    v3 = predictions_frame(loaded.utterances, "v3-merged", seed=3, labels=merged)
    with warehouse.writing(loaded.path, settings=settings) as con:
        result = warehouse.load_predictions(con, v3)
        assert result.inserted == len(v3)
        nulls = con.execute("SELECT count(*) FILTER (WHERE p_calm IS NULL), count(*) FILTER (WHERE p_happy IS NULL) "
                            "FROM predictions WHERE model_version = 'v3-merged'").fetchone()
    assert nulls == (len(v3), 0)


def test_bad_rows_go_to_quarantine_and_the_rest_loads(loaded, settings):
    bad = predictions_frame(loaded.utterances.head(4), "v9", seed=9)
    bad.loc[0, "utterance_id"] = "not-an-utterance"
    bad.loc[1, "label"] = "bored"
    bad.loc[2, "confidence"] = 1.5
    utts = loaded.utterances.head(2).copy()
    utts["utterance_id"] = ["u-x", "u-y"]
    utts.loc[0, "session_id"] = "no-such-session"
    utts.loc[1, "end_s"] = utts.loc[1, "start_s"] - 1
    with warehouse.writing(loaded.path, settings=settings) as con:
        for _ in range(2):  # re-running updates the quarantine rows instead of adding more
            p = warehouse.load_predictions(con, bad, run_id="run-1")
            u = warehouse.load_utterances(con, utts, key=settings.pseudonym_key)
        reasons = dict(con.execute("SELECT source, reason FROM quarantine").fetchall())
        kept = con.execute("SELECT count(*) FROM predictions WHERE model_version = 'v9'").fetchone()[0]
    assert (p.inserted, p.quarantined) == (0, 3) and kept == 1
    assert (u.inserted, u.quarantined) == (0, 2)
    assert len(reasons) == 5
    assert "unknown utterance" in reasons["not-an-utterance@v9"]
    assert any("labels.EMOTIONS" in r for r in reasons.values())
    assert any("within [0, 1]" in r for r in reasons.values())
    assert any("unknown session" in r for r in reasons.values())
    assert any("end_s must be after start_s" in r for r in reasons.values())


def test_missing_columns_raise_a_clear_error(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        with pytest.raises(warehouse.WarehouseLoadError, match="confidence"):
            warehouse.load_predictions(con, loaded.v1.drop(columns=["confidence"]))
        with pytest.raises(warehouse.WarehouseLoadError, match="source"):
            warehouse.quarantine(con, [{"reason": "no source"}])


def test_ingest_runs_quarantine_and_validation_are_recorded_once(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        run = warehouse.start_ingest_run(con, flow_run_id="flow-123", flow_name="nightly")
        assert run == "flow-123"
        assert warehouse.start_ingest_run(con, flow_run_id="flow-123", flow_name="nightly") == run
        for _ in range(2):
            warehouse.quarantine(con, [{"stage": "audio", "source": "file:///a/x.wav", "reason": "truncated WAV", "details": {"bytes": 12}}], run_id=run)
            vid = warehouse.record_validation(con, "manifest", "S1/manifest.csv", False, 5, 1, {"failed": ["recorded_at"]}, run_id=run)
        warehouse.finish_ingest_run(con, run, "partial", n_sessions=5, n_utterances=60, n_predictions=60, n_quarantined=1, message="1 file bad")
        runs = con.execute("SELECT run_id, status, n_quarantined, finished_at IS NOT NULL FROM ingest_runs").fetchall()
        q = con.execute("SELECT stage, reason, details->>'bytes', run_id FROM quarantine").fetchall()
        v = con.execute("SELECT validation_id, success, n_failed FROM validation_results").fetchall()
        with pytest.raises(KeyError):
            warehouse.finish_ingest_run(con, "never-started")
        status = warehouse.status(con)
    assert runs == [("flow-123", "partial", 1, True)]
    assert q == [("audio", "truncated WAV", "12", "flow-123")]
    assert v == [(vid, False, 1)]
    assert status["last_ingest_run"]["status"] == "partial"
    assert status["rows"]["quarantine"] == 1 and status["schema_version"] == len(warehouse.migrations())


# --------------------------------------------------------------------------------------------
# Pseudonyms


def test_no_raw_participant_ids_are_stored(loaded, settings):
    raw_ids = [p[0] for p in PARTICIPANTS]
    con = warehouse.connect(loaded.path, read_only=True, settings=settings)
    try:
        for table, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns c JOIN information_schema.tables t USING (table_name) "
            "WHERE t.table_type = 'BASE TABLE' AND c.data_type IN ('VARCHAR', 'JSON', 'VARCHAR[]')"
        ).fetchall():
            text = " ".join(str(v) for (v,) in con.execute(f'SELECT CAST("{column}" AS VARCHAR) FROM {table}').fetchall())
            for raw in raw_ids:
                assert raw not in text, f"raw id {raw} stored in {table}.{column}"
        keys = {r[0] for r in con.execute("SELECT participant_key FROM participants").fetchall()}
    finally:
        con.close()
    assert keys == {warehouse.pseudonymise(p, KEY) for p in raw_ids}
    assert warehouse.pseudonymise("anna.k", KEY) != warehouse.pseudonymise("anna.k", "another-key")


def test_key_rotation_rekeys_every_reference(loaded, settings):
    raw_ids = [p[0] for p in PARTICIPANTS]
    with warehouse.writing(loaded.path, settings=settings) as con:
        before = con.execute("SELECT count(*) FROM v_labelled WHERE segment IS NOT NULL").fetchone()[0]
        assert warehouse.rotate_pseudonym_key(con, raw_ids, KEY, "new-key") == len(raw_ids)
        keys = {r[0] for r in con.execute("SELECT participant_key FROM utterances UNION SELECT participant_key FROM session_participants "
                                          "UNION SELECT participant_key FROM participants").fetchall()}
        after = con.execute("SELECT count(*) FROM v_labelled WHERE segment IS NOT NULL").fetchone()[0]
    assert keys == {warehouse.pseudonymise(p, "new-key") for p in raw_ids}
    assert after == before == len(loaded.utterances)


# --------------------------------------------------------------------------------------------
# Locking


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        print("locked", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_busy_warehouse_names_the_holder_after_bounded_wait(loaded, settings):
    holder = _hold_lock(loaded.path, 20)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match=rf"process {holder.pid} \(") as info:
            warehouse.connect(loaded.path, read_only=True, wait_s=0.6, settings=settings)
        waited = time.monotonic() - started
        assert 0.5 <= waited < 5
        assert "waited 0.6 s" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_reader_waits_for_a_brief_writer(loaded, settings):
    holder = _hold_lock(loaded.path, 1.0)
    try:
        started = time.monotonic()
        frame = warehouse.run_query(loaded.path, "SELECT count(*) AS n FROM utterances", settings=settings.model_copy(update={"warehouse_wait_s": 20}))
        assert time.monotonic() - started >= 0.5
        assert frame["n"].iloc[0] == len(loaded.utterances)
    finally:
        holder.wait()


# --------------------------------------------------------------------------------------------
# Reading


def test_run_query_binds_parameters_and_cannot_write(loaded, settings):
    hostile = "x'; DROP TABLE predictions; --"
    assert warehouse.run_query(loaded.path, "SELECT * FROM sessions WHERE session_id = $s", {"s": hostile}, settings=settings).empty
    assert warehouse.run_query(loaded.path, "SELECT count(*) AS n FROM sessions WHERE market = ?", ["DE"], settings=settings)["n"].iloc[0] == 2
    with pytest.raises(duckdb.Error, match="read-only"):
        warehouse.run_query(loaded.path, "DROP TABLE predictions", settings=settings)
    assert warehouse.run_query(loaded.path, "SELECT count(*) AS n FROM predictions", settings=settings)["n"].iloc[0] == 2 * len(loaded.utterances)
    with pytest.raises(FileNotFoundError, match="ser warehouse migrate"):
        warehouse.run_query(loaded.path.with_name("missing.duckdb"), "SELECT 1", settings=settings)


# --------------------------------------------------------------------------------------------
# Views against answers computed with pandas


P_COLUMNS = [f"p_{e}" for e in EMOTIONS]


def _wilson(k, n) -> tuple[list[float], list[float]]:
    """scipy's 95% Wilson interval for each share k/n: the independent known answer."""
    from scipy.stats import binomtest

    intervals = [binomtest(int(a), int(b)).proportion_ci(0.95, method="wilson") for a, b in zip(k, n)]
    return [ci.low for ci in intervals], [ci.high for ci in intervals]


def _share(frame: pd.DataFrame, by: list[str], total: str = "total") -> pd.DataFrame:
    """Hard share of each label per group, with its denominator ``total``, scipy's Wilson
    interval and the expected share (the group's mean of p_<label>), all in pandas."""
    counts = frame.groupby(by + ["label"]).size().rename("n_utterances").reset_index()
    counts[total] = counts.groupby(by)["n_utterances"].transform("sum")
    counts["share"] = counts["n_utterances"] / counts[total]
    counts["share_low"], counts["share_high"] = _wilson(counts["n_utterances"], counts[total])
    if set(P_COLUMNS) <= set(frame.columns):
        means = frame.groupby(by)[P_COLUMNS].mean().reset_index().melt(id_vars=by, var_name="label", value_name="expected_share")
        means["label"] = means["label"].str.removeprefix("p_")
        counts = counts.merge(means, on=by + ["label"], how="left")
    return counts


SHARE_COLUMNS = ["n_utterances", "share", "share_low", "share_high", "expected_share"]


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], columns: list[str]) -> None:
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(want)
    for column in keys:
        if pd.api.types.is_datetime64_any_dtype(got[column]) and not pd.api.types.is_datetime64_any_dtype(want[column]):
            got[column] = got[column].dt.date  # DuckDB DATE arrives as datetime64
        assert [str(x) for x in got[column]] == [str(x) for x in want[column]], column
    for column in columns:
        np.testing.assert_allclose(got[column].astype(float), want[column].astype(float), err_msg=column)


def test_wilson_macros_match_scipy_at_the_edges(loaded, settings):
    cases = [(0, 1), (1, 1), (0, 10), (1, 10), (10, 10), (3, 14), (7, 400), (200, 400)]
    sql = " UNION ALL ".join(f"SELECT {k} AS k, {n} AS n, wilson_low({k}, {n}) AS low, wilson_high({k}, {n}) AS high" for k, n in cases)
    got = warehouse.run_query(loaded.path, sql + " ORDER BY n, k", settings=settings)
    want = pd.DataFrame(cases, columns=["k", "n"]).sort_values(["n", "k"])
    want["low"], want["high"] = _wilson(want["k"], want["n"])
    _assert_same(got, want, ["n", "k"], ["low", "high"])
    assert got.loc[got["k"] == 0, "low"].eq(0.0).all() and got.loc[got["k"] == got["n"], "high"].eq(1.0).all()  # exactly, not a hair off
    ninety = warehouse.run_query(loaded.path, "SELECT wilson_low(3, 14, z := 1.6448536269514722) AS low", settings=settings)["low"].iloc[0]
    from scipy.stats import binomtest
    assert ninety == pytest.approx(binomtest(3, 14).proportion_ci(0.90, method="wilson").low, rel=1e-12)


def test_weekly_share_view(loaded, settings):
    want = _share(loaded.expected(), ["survey_id", "week"], "week_utterances")
    got = warehouse.run_query(loaded.path, "SELECT * FROM v_emotion_share_weekly", settings=settings)
    _assert_same(got, want, ["survey_id", "week", "label"], SHARE_COLUMNS + ["week_utterances"])
    assert (got["share_low"] <= got["share"]).all() and (got["share"] <= got["share_high"]).all()
    # s3 was recorded on Sunday 23:30 at -02:00, which is Monday in UTC: it counts in the week of March 9.
    assert sorted({str(w)[:10] for w in got["week"]}) == ["2026-03-02", "2026-03-09", "2026-03-23"]


def test_question_and_segment_share_views(loaded, settings):
    exp = loaded.expected()
    want_q = _share(exp[exp["question"].notna()], ["question"], "question_utterances")
    got_q = warehouse.run_query(loaded.path, "SELECT * FROM v_emotion_share_by_question", settings=settings)
    _assert_same(got_q, want_q, ["question", "label"], SHARE_COLUMNS + ["question_utterances"])
    long = exp.melt(id_vars=["label"] + P_COLUMNS, value_vars=["age_band", "gender", "participant_market", "segment"], var_name="attribute")
    long["attribute"] = long["attribute"].replace({"participant_market": "market"})
    want_s = _share(long, ["attribute", "value"], "group_utterances")
    got_s = warehouse.run_query(loaded.path, "SELECT * FROM v_emotion_share_by_segment", settings=settings)
    _assert_same(got_s, want_s, ["attribute", "value", "label"], SHARE_COLUMNS + ["group_utterances"])


def test_expected_share_sums_to_one_over_the_emotions_and_is_null_without_probabilities(loaded, settings):
    got = warehouse.run_query(loaded.path, "SELECT week, emotion, avg(p) AS expected FROM v_labelled_probabilities GROUP BY ALL", settings=settings)
    np.testing.assert_allclose(got.groupby("week")["expected"].sum(), 1.0)  # every emotion, also those never the label
    bare = loaded.v1[["utterance_id", "label", "confidence"]].assign(model_version="bare")  # a model that stored no probabilities
    with warehouse.writing(loaded.path, settings=settings) as con:
        warehouse.load_predictions(con, bare)
    shares = warehouse.run_query(loaded.path, "SELECT * FROM v_emotion_share_weekly", model_version="bare", settings=settings)
    want = _share(loaded.expected("v1"), ["survey_id", "week"], "week_utterances")
    _assert_same(shares, want, ["survey_id", "week", "label"], ["n_utterances", "share", "share_low", "share_high"])
    assert shares["expected_share"].isna().all()  # unknown, not zero
    for view, column in [("v_negative_trend", "expected_negative_share"), ("v_session_arc", "expected_running_negative_share")]:
        assert warehouse.run_query(loaded.path, f"SELECT * FROM {view}", model_version="bare", settings=settings)[column].isna().all(), view


def test_session_arc_view(loaded, settings):
    exp = loaded.expected().sort_values(["session_id", "utterance_index"])
    by_session = exp.groupby("session_id")
    exp["n_utterances_so_far"] = by_session.cumcount() + 1
    exp["n_negative_so_far"] = by_session["is_negative"].cumsum()
    exp["running_negative_share"] = by_session["is_negative"].transform(lambda s: s.astype(float).expanding().mean())
    exp["running_negative_share_low"], exp["running_negative_share_high"] = _wilson(exp["n_negative_so_far"], exp["n_utterances_so_far"])
    exp["negative_probability"] = exp[[f"p_{e}" for e in sorted(NEGATIVE_EMOTIONS)]].sum(axis=1)
    exp["expected_running_negative_share"] = exp.groupby("session_id")["negative_probability"].transform(lambda s: s.expanding().mean())
    got = warehouse.run_query(loaded.path, "SELECT * FROM v_session_arc", settings=settings)
    _assert_same(got, exp, ["session_id", "utterance_index", "utterance_id", "label"],
                 ["start_s", "negative_probability", "n_utterances_so_far", "n_negative_so_far", "running_negative_share",
                  "running_negative_share_low", "running_negative_share_high", "expected_running_negative_share"])
    assert (got.sort_values(["session_id", "utterance_index"])["spoken_at"].reset_index(drop=True) == exp["spoken_at"].reset_index(drop=True)).all()


def test_negative_trend_view_compares_with_the_previous_week_with_data_and_gives_counts_and_intervals(loaded, settings):
    from scipy.stats import binomtest

    exp = loaded.expected()
    exp["negative_probability"] = exp[[f"p_{e}" for e in sorted(NEGATIVE_EMOTIONS)]].sum(axis=1)
    weekly = exp.groupby("week").agg(n_utterances=("label", "size"), n_negative=("is_negative", "sum"),
                                     expected_negative_share=("negative_probability", "mean")).reset_index()
    weekly["negative_share"] = weekly["n_negative"] / weekly["n_utterances"]
    weekly["change_from_previous"] = weekly["negative_share"].diff()
    weekly["weeks_since_previous"] = [np.nan] + [(b - a).days // 7 for a, b in zip(weekly["week"], weekly["week"][1:])]
    intervals = [binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson") for k, n in zip(weekly["n_negative"], weekly["n_utterances"])]
    weekly["negative_share_low"] = [ci.low for ci in intervals]
    weekly["negative_share_high"] = [ci.high for ci in intervals]
    got = warehouse.run_query(loaded.path, "SELECT * FROM v_negative_trend", settings=settings)
    _assert_same(got, weekly, ["week"], ["n_utterances", "n_negative", "negative_share", "change_from_previous", "weeks_since_previous",
                                         "negative_share_low", "negative_share_high"])
    np.testing.assert_allclose(got.sort_values("week")["expected_negative_share"], weekly["expected_negative_share"], atol=1e-5)  # float32 p
    assert got["change_from_previous"].isna().sum() == 1  # only the first week: a gap week no longer hides a change
    assert (got.sort_values("week")["weeks_since_previous"].dropna() > 1).any()  # and the gap is said


def test_every_share_in_a_view_has_its_counts_interval_and_expected_share(loaded, settings):
    con = warehouse.connect(loaded.path, read_only=True, settings=settings)
    try:
        columns = con.execute("SELECT table_name, list(column_name) FROM information_schema.columns WHERE table_name IN "
                              "(SELECT view_name FROM duckdb_views() WHERE NOT internal) GROUP BY 1").fetchall()
    finally:
        con.close()
    checked = set()
    for view, names in columns:
        for share in [c for c in names if c.endswith("share") and not c.startswith("expected_") and c != "previous_share"]:
            assert {f"{share}_low", f"{share}_high", f"expected_{share}"} <= set(names), (view, share)
            assert sum(c.startswith("n_") or c.endswith("_utterances") for c in names) >= 2, (view, "count and denominator")
            checked.add(view)
    assert checked == {"v_emotion_share_weekly", "v_emotion_share_by_question", "v_emotion_share_by_segment", "v_session_arc", "v_negative_trend"}


def test_moments_review_queue_and_model_comparison_views(loaded, settings):
    exp = loaded.expected()
    moments = exp[~exp["label"].isin(["neutral", "calm"])].sort_values(["confidence", "utterance_id"], ascending=[False, True])
    got = warehouse.run_query(loaded.path, "SELECT * FROM v_emotional_moments ORDER BY rank", settings=settings)
    assert list(got["utterance_id"]) == list(moments["utterance_id"])
    assert list(got["rank"]) == list(range(1, len(moments) + 1))

    for threshold in (None, 0.7):
        cut = 0.5 if threshold is None else threshold
        queue = exp[(exp["confidence"] < cut) | (exp["context_label"] != exp["label"])]
        got = warehouse.run_query(loaded.path, "SELECT * FROM v_review_queue", review_threshold=threshold, settings=settings)
        assert set(got["utterance_id"]) == set(queue["utterance_id"])
        assert list(got["confidence"]) == sorted(got["confidence"])
        low = set(got.loc[got["reason"] == "low confidence", "utterance_id"])
        assert low == set(exp.loc[exp["confidence"] < cut, "utterance_id"])

    both = loaded.v1[["utterance_id", "label"]].merge(loaded.v2[["utterance_id", "label"]], on="utterance_id", suffixes=("_old", "_new"))
    want = both.groupby(["label_old", "label_new"]).size().rename("n_utterances").reset_index()
    want.columns = ["other_label", "current_label", "n_utterances"]
    got = warehouse.run_query(loaded.path, "SELECT * FROM v_model_label_transitions", settings=settings)
    assert set(got["other_version"]) == {"v1"} and set(got["current_version"]) == {"v2"}
    _assert_same(got, want, ["other_label", "current_label"], ["n_utterances"])
    changed = warehouse.run_query(loaded.path, "SELECT count(*) FILTER (WHERE label_changed) AS n FROM v_model_comparison", settings=settings)["n"].iloc[0]
    assert changed == (both["label_old"] != both["label_new"]).sum()


@pytest.mark.slow
def test_concurrent_writers_take_turns(loaded, settings):
    """Two processes load different model versions at once; the second waits, neither fails."""
    code = textwrap.dedent("""
        import sys
        import pandas as pd
        from ser_pipeline import warehouse
        from ser_pipeline.settings import get_settings
        path, version = sys.argv[1], sys.argv[2]
        settings = get_settings()
        ids = warehouse.run_query(path, "SELECT utterance_id FROM utterances", settings=settings)["utterance_id"]
        frame = pd.DataFrame({"utterance_id": ids, "model_version": version, "label": "happy", "confidence": 0.8})
        for _ in range(5):
            with warehouse.writing(path, settings=settings) as con:
                warehouse.load_predictions(con, frame)
    """)
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(warehouse.__file__).parents[1]), "SER_WAREHOUSE_WAIT_S": "60"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(loaded.path), v], env=env, stderr=subprocess.PIPE, text=True) for v in ("w1", "w2")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    counts = warehouse.run_query(loaded.path, "SELECT model_version, count(*) AS n FROM predictions WHERE model_version LIKE 'w%' GROUP BY 1 ORDER BY 1", settings=settings)
    assert counts.values.tolist() == [["w1", len(loaded.utterances)], ["w2", len(loaded.utterances)]]


def test_model_metrics_are_stored_as_json_numbers(loaded, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        warehouse.record_model_version(con, "v3", metrics={"uar": np.float32(0.5), "recall": np.array([0.25, 0.75]), "n": np.int64(40)},
                                       labels=list(EMOTIONS), feature_spec="abc123")
        warehouse.record_model_version(con, "v3", promoted_at=T0)  # a later update keeps what it does not name
        row = con.execute("SELECT metrics->>'$.uar', metrics->'$.recall'->>1, metrics->>'$.n', json_type(metrics->'$.uar'), "
                          "labels, feature_spec, promoted_at IS NOT NULL FROM model_versions WHERE model_version = 'v3'").fetchone()
    assert row == ("0.5", "0.75", "40", "DOUBLE", list(EMOTIONS), "abc123", True)
