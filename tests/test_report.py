"""The HTML report: self-contained, charts present and coloured per emotion, renders in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _warehouse_data import Loaded, loaded, _loaded_template  # noqa: F401 (fixture)
from _warehouse_data import utterances_frame, write_survey
from ser_pipeline import warehouse
from ser_pipeline.manifest import read_survey
from ser_pipeline.report import EMOTION_COLORS, write_report

ROOT = Path(__file__).resolve().parents[1]


def _images(page: str) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _has_colour(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(image.astype(int) - rgb).max(axis=2) <= tolerance).sum() > 50)


def _report(loaded: Loaded, tmp_path: Path, **kwargs) -> str:
    con = warehouse.connect(loaded.path, read_only=True)
    try:
        return write_report(con, "S1", tmp_path / "out", **kwargs).read_text()
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


def test_report_for_a_chosen_model_version(loaded: Loaded, tmp_path):
    page = _report(loaded, tmp_path, model_version="v1")
    assert "Labels from model <b>v1</b> (session variable" in page
    con = warehouse.connect(loaded.path, read_only=True)
    try:
        assert warehouse.current_model(con) == ("v2", "latest")  # the choice did not stick to the connection
    finally:
        con.close()


def test_survey_without_predictions_gets_no_empty_charts(loaded: Loaded, tmp_path):
    other = read_survey(write_survey(tmp_path / "archive", "S2", session_prefix="b-").as_uri())
    with warehouse.writing(loaded.path) as con:
        warehouse.load_survey(con, other)
        warehouse.load_utterances(con, utterances_frame(other))
        path = write_report(con, "S2", tmp_path / "out")
        with pytest.raises(KeyError, match="not in the warehouse"):
            write_report(con, "S404", tmp_path / "out")
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
