"""The HTML report: self-contained, charts present and coloured per emotion, renders in Chromium."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _warehouse_data import Loaded, loaded, _loaded_template  # noqa: F401 (fixture)
from _warehouse_data import KEY, T0, expected_frame, predictions_frame, utterances_frame, write_survey
from ser_pipeline import warehouse
from ser_pipeline.labels import NEGATIVE_EMOTIONS
from ser_pipeline.settings import Settings
from ser_pipeline.archive.manifest import read_survey
from ser_pipeline.warehouse.report import EMOTION_COLORS, WIDE_HALF_WIDTH, is_wide, write_survey_report

ROOT = Path(__file__).resolve().parents[1]


def _images(page: str) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _has_colour(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(image.astype(int) - rgb).max(axis=2) <= tolerance).sum() > 50)


def _report(loaded: Loaded, tmp_path: Path, **kwargs) -> str:
    con = warehouse.connect(loaded.path, read_only=True, settings=Settings())
    try:
        return write_survey_report(con, "S1", tmp_path / "out", **kwargs).read_text()
    finally:
        con.close()


def test_report_is_self_contained_with_five_coloured_charts(loaded: Loaded, tmp_path):
    page = _report(loaded, tmp_path)
    assert "<style>" in page and not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    images = _images(page)
    assert len(images) == 5  # share over time, segments, questions, session arcs, confidence
    for image in images:
        assert image.shape[0] > 200 and image.shape[1] > 500
        assert image.std() > 20  # not blank
    over_time = images[0]
    shown = set(loaded.v2["label"])
    for emotion, colour in EMOTION_COLORS.items():
        assert _has_colour(over_time, colour) == (emotion in shown), emotion
    assert "Labels from model <b>v2</b> (latest" in page
    assert f"<b>{len(loaded.utterances)}</b>utterances" in page
    for raw in ("anna.k", "bob.m"):
        assert raw not in page


def test_report_for_a_chosen_model_version(loaded: Loaded, tmp_path, settings):
    page = _report(loaded, tmp_path, model_version="v1")
    assert "Labels from model <b>v1</b> (session variable" in page
    con = warehouse.connect(loaded.path, read_only=True, settings=settings)
    try:
        assert warehouse.current_model(con) == ("v2", "latest")  # the choice did not stick to the connection
    finally:
        con.close()


def test_survey_without_predictions_gets_no_empty_charts(loaded: Loaded, tmp_path, settings):
    other = read_survey(write_survey(tmp_path / "archive", "S2", session_prefix="b-").as_uri())
    with warehouse.writing(loaded.path, settings=settings) as con:
        warehouse.load_survey(con, other, key=settings.pseudonym_key)
        warehouse.load_utterances(con, utterances_frame(other), key=settings.pseudonym_key)
        path = write_survey_report(con, "S2", tmp_path / "out")
        with pytest.raises(KeyError, match="not in the warehouse"):
            write_survey_report(con, "S404", tmp_path / "out")
    page = path.read_text()
    assert _images(page) == []
    assert page.count("No labelled utterances for this survey yet") == 6


@pytest.mark.browser
def test_report_renders_in_headless_chromium(loaded: Loaded, tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("chromium is not installed (apt-get update && apt-get install -y chromium)")
    from PIL import Image

    html_path = tmp_path / "out" / "S1.html"
    _report(loaded, tmp_path)
    png = tmp_path / "S1.png"
    subprocess.run([str(ROOT / "scripts" / "render_report.sh"), str(html_path), str(png), "1400", "3000"], check=True, timeout=120)
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape[:2] == (3000, 1400)
    assert shot.std() > 20
    assert _has_colour(shot, EMOTION_COLORS["angry"]) and _has_colour(shot, "#23395b")  # a chart and the header drew


# --------------------------------------------------------------------------------------------
# Counts, intervals and expected shares beside every share


def _few_and_many(tmp_path) -> tuple[Path, pd.DataFrame]:
    """A warehouse whose survey has a question answered in 10 utterances ("rare") and one
    answered in 400 ("common"); returns its path and the expected frame (pandas)."""
    survey = read_survey(write_survey(tmp_path / "archive", "S1", seed=3, turns_per_session=82).as_uri())
    utts = utterances_frame(survey)
    assert len(utts) == 410
    utts["question"] = ["rare"] * 10 + ["common"] * 400
    predictions = predictions_frame(utts, "v1", seed=4)
    path = tmp_path / "few-and-many.duckdb"
    with warehouse.writing(path, settings=Settings()) as con:
        warehouse.migrate(con)
        warehouse.load_survey(con, survey, key=KEY)
        warehouse.load_utterances(con, utts, key=KEY)
        warehouse.record_model_version(con, "v1", created_at=T0)
        warehouse.load_predictions(con, predictions)
    return path, expected_frame(survey, utts, predictions, KEY)


def _known_shares(exp) -> dict[str, tuple[int, int, float]]:
    """Every share the report shows, keyed as its data-share attribute: (count, of, expected share)."""
    exp = exp.assign(negative_probability=exp[[f"p_{e}" for e in sorted(NEGATIVE_EMOTIONS)]].sum(axis=1),
                     segment_market=exp["participant_market"])
    shares = {}

    def add(prefix: str, group: pd.DataFrame) -> None:
        for label, k in group["label"].value_counts().items():
            shares[f"{prefix}|{label}"] = (int(k), len(group), float(group[f"p_{label}"].mean()))

    for week, group in exp.groupby("week"):
        add(f"week|{week}", group)
        shares[f"week|{week}|negative"] = (int(group["is_negative"].sum()), len(group), float(group["negative_probability"].mean()))
    for attribute, column in [("age_band", "age_band"), ("gender", "gender"), ("market", "segment_market"), ("segment", "segment")]:
        for value, group in exp.groupby(column):
            add(f"segment|{attribute}={value}", group)
    for question, group in exp.groupby("question"):
        add(f"question|{question}", group)
    for session, group in exp.groupby("session_id"):
        shares[f"session|{session}|negative"] = (int(group["is_negative"].sum()), len(group), float(group["negative_probability"].mean()))
    shares["survey|S1|negative"] = (int(exp["is_negative"].sum()), len(exp), float(exp["negative_probability"].mean()))
    return shares


def test_report_gives_count_interval_and_expected_share_and_marks_exactly_the_wide_intervals(tmp_path, settings):
    from scipy.stats import binomtest

    path, exp = _few_and_many(tmp_path)
    con = warehouse.connect(path, read_only=True, settings=settings)
    try:
        page = write_survey_report(con, "S1", tmp_path / "out").read_text()
    finally:
        con.close()
    shown = {html.unescape(key): (set(classes.split()), html.unescape(title))
             for classes, key, title in re.findall(r'<(?:td|div) class="([^"]*)" data-share="([^"]*)" title="([^"]*)">', page)}
    known = _known_shares(exp)
    assert set(shown) == set(known)  # every share the report shows, and only those, carries its numbers
    wide = set()
    for key, (k, n, expected) in known.items():
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert shown[key][1] == (f"{k} of {n} utterances; 95% interval {ci.low:.1%} to {ci.high:.1%}; "
                                 f"expected share (mean probability) {expected:.1%}"), key
        if (ci.high - ci.low) / 2 > 0.15:
            wide.add(key)
    marked = {key for key, (classes, _) in shown.items() if "wide" in classes}
    assert marked == wide
    rare = {key for key in known if key.startswith("question|rare|")}
    assert rare and rare <= marked  # all of the 10-utterance question's shares are marked ...
    assert not any(key.startswith("question|common|") for key in marked)  # ... none of the 400-utterance one's
    assert marked == rare  # and nothing else in this survey is that thin (weeks, segments and sessions have 68+ utterances)
    assert page.count("†") >= len(marked) and "interval wider than ±15 points: few utterances" in page


def test_is_wide_is_half_the_interval_over_fifteen_points():
    assert is_wide(0.10, 0.41) and not is_wide(0.10, 0.39) and not is_wide(0.0, 0.2775)  # 0 of 10: ±13.9 points
    assert WIDE_HALF_WIDTH == 0.15
