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
from _warehouse_data import HTML_TEXT, KEY, T0, expected_frame, predictions_frame, utterances_frame, write_survey
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


QUOTE_BACKGROUND = "#fbf6ec"  # report._CSS: blockquote.quote and td.quote


@pytest.mark.browser
def test_report_renders_in_headless_chromium(loaded: Loaded, tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        pytest.skip("chromium is not installed (apt-get update && apt-get install -y chromium)")
    from PIL import Image

    html_path = tmp_path / "out" / "S1.html"
    _report(loaded, tmp_path)
    png = tmp_path / "S1.png"
    # Tall enough for the whole page: the quotes come after the charts (scripts/render_report.sh to look at it).
    subprocess.run([str(ROOT / "scripts" / "render_report.sh"), str(html_path), str(png), "1400", "6000"], check=True, timeout=120)
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape[:2] == (6000, 1400)
    assert shot.std() > 20
    assert _has_colour(shot, EMOTION_COLORS["angry"]) and _has_colour(shot, "#23395b")  # a chart and the header drew
    # The quotes drew: 3 questions x 3 negative answers, each a block about 75 px high, and 10 moments' quote cells.
    quote = (np.abs(shot.astype(int) - np.array([0xfb, 0xf6, 0xec])).max(axis=2) <= 3).sum(axis=1) > 200
    assert quote.sum() > 9 * 50, quote.sum()
    first_quote = int(np.argmax(quote))
    assert 1000 < first_quote < len(quote) - 700  # after the charts at the top, with the moments' quotes below
    # Each negative answer is marked on its left by its label's colour, right beside the quote.
    left = shot[quote, :, :].astype(int)
    assert any((np.abs(left - np.array([int(EMOTION_COLORS[e][i:i + 2], 16) for i in (1, 3, 5)])).max(axis=2) <= 12).any()
               for e in NEGATIVE_EMOTIONS)


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


# --------------------------------------------------------------------------------------------
# Quotes: what was said, when the survey has transcripts


def _quotes_expected(loaded: Loaded) -> pd.DataFrame:
    """The labelled utterances with words (pandas), with P(negative)."""
    exp = loaded.expected().merge(loaded.transcripts, on="utterance_id")
    exp = exp[exp["empty_reason"].isna()]
    return exp.assign(negative_probability=exp[[f"p_{e}" for e in sorted(NEGATIVE_EMOTIONS)]].sum(axis=1))


def test_report_quotes_each_questions_most_negative_answers(loaded: Loaded, tmp_path):
    page = _report(loaded, tmp_path)
    assert "What was said: the most negative answers per question" in page
    exp = _quotes_expected(loaded)
    negative = exp[exp["is_negative"] & exp["question"].notna()].sort_values(
        ["negative_probability", "confidence", "utterance_id"], ascending=[False, False, True])
    groups = dict(re.findall(r'<div class="quote-group" data-question="([^"]*)"><h3>[^<]*</h3>(.*?)</div>', page))
    assert list(groups) == sorted(set(exp["question"].dropna()))  # every question, in order
    for question, body in groups.items():
        want = negative[negative["question"] == question].head(3)
        assert len(want) == 3
        assert re.findall(r"<p>“(.*?)”</p>", body) == [html.escape(t) for t in want["text"]], question
        chips = re.findall(r'<span class="chip" style="background:(#[0-9a-f]{6})">(\w+)</span> P\(negative\) (\d+)%', body)
        assert [(c, l, int(p)) for c, l, p in chips] == [(EMOTION_COLORS[l], l, round(100 * p)) for l, p in
                                                          zip(want["label"], want["negative_probability"])], question
    assert "[EMAIL]" in groups["price"]  # the redaction placeholder is shown as stored
    # How much was transcribed, and that empty transcripts are never quoted.
    n = len(loaded.utterances)
    assert f"{n - 2} of {n} utterances have a transcript with words" in page and "1 was transcribed empty (no speech: 1)" in page
    assert "1 not transcribed" in page


def test_report_quotes_each_emotional_moment_escaped(loaded: Loaded, tmp_path, settings):
    top = loaded.special["html"]
    exp = _quotes_expected(loaded)
    moments = loaded.expected()
    moments = moments[~moments["label"].isin(["neutral", "calm"])].sort_values(["confidence", "utterance_id"], ascending=[False, True]).head(10)
    assert moments["utterance_id"].iloc[0] == top
    page = _report(loaded, tmp_path)
    cells = re.findall(r'<td class="quote">“(.*?)”</td>', page)
    texts = exp.set_index("utterance_id")["text"]
    assert cells == [html.escape(texts[u]) for u in moments["utterance_id"]]
    assert cells[0] == "I &lt;b&gt;love&lt;/b&gt; the new bottle &amp; the &quot;green&quot; cap" == html.escape(HTML_TEXT)
    assert "<b>love</b>" not in page  # the text never becomes markup
    # A moment transcribed empty says why; one not transcribed says so; neither has quote marks.
    second = moments["utterance_id"].iloc[1]
    with warehouse.writing(loaded.path, settings=settings) as con:
        con.execute("UPDATE transcripts SET text = '', empty_reason = 'repeated phrase' WHERE utterance_id = ?", [top])
        con.execute("DELETE FROM transcripts WHERE utterance_id = ?", [second])
    page = _report(loaded, tmp_path)
    rows = re.findall(r'<td class="quote( empty)?">(.*?)</td>', page)
    assert rows[:2] == [(" empty", "nothing to quote (repeated phrase)"), (" empty", "not transcribed")]
    assert len(rows) == 10 and html.escape(HTML_TEXT) not in page


def test_report_without_transcripts_shows_no_quotes_and_no_text(loaded: Loaded, tmp_path, settings):
    with warehouse.writing(loaded.path, settings=settings) as con:
        con.execute("DELETE FROM transcripts")  # SER_TRANSCRIBE=false writes none
    page = _report(loaded, tmp_path)
    assert "What was said" not in page and "what was said" not in page and 'class="quote' not in page
    assert "Most emotional moments" in page and '<table class="moments">' in page  # the moments are still there
    for text in set(loaded.transcripts["text"]) - {""} | {"an older model's words"}:
        assert html.escape(text) not in page and text not in page, text
    assert len(_images(page)) == 5
