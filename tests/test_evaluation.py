import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from ser_pipeline.evaluation.metrics import evaluate, expected_calibration_error, write_evaluation_report

LABELS = ["neutral", "happy", "sad", "angry"]


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4))
    logits[np.arange(200), y] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gender = np.where(np.arange(200) % 2, "male", "female")
    proba[gender == "male"] = np.roll(proba[gender == "male"], 1, axis=1)  # males mostly wrong
    return y, proba, gender


def test_metrics_match_sklearn(known):
    y, proba, gender = known
    pred = proba.argmax(axis=1)
    m = evaluate(y, proba, LABELS)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["uar"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["macro"]["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["weighted"]["f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["weighted"]["precision"] == pytest.approx(precision_score(y, pred, average="weighted", zero_division=0))
    assert m["per_class"]["sad"]["recall"] == pytest.approx(recall_score(y, pred, labels=[2], average=None)[0])
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=range(4)).tolist()


def test_group_metrics_name_the_largest_gap(known):
    y, proba, gender = known
    m = evaluate(y, proba, LABELS, groups={"gender": gender})
    gap = m["groups"]["gender"]["largest_gap"]["uar"]
    assert (gap["best"], gap["worst"]) == ("female", "male")
    female = m["groups"]["gender"]["values"]["female"]
    assert female["uar"] == pytest.approx(recall_score(y[gender == "female"], proba[gender == "female"].argmax(1), average="macro"))
    assert gap["gap"] == pytest.approx(female["uar"] - m["groups"]["gender"]["values"]["male"]["uar"])


def test_expected_calibration_error_on_known_cases():
    y = np.array([0, 0, 1, 1])
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(y, perfect) == pytest.approx(0.0)
    # always 0.9 confident, right half the time: ECE = |0.5 - 0.9|
    overconfident = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.4)


def test_write_evaluation_report_writes_every_artefact(known, tmp_path):
    y, proba, gender = known
    m = evaluate(y, proba, LABELS, groups={"gender": gender})
    report = write_evaluation_report(tmp_path, m, y, proba, title="synthetic", details={"test speakers": "a, b"})
    assert report.read_text().count("| female |") == 1 and "Largest UAR gap by gender" in report.read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["uar"] == pytest.approx(m["uar"])
    csv = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert csv[0].startswith("true\\predicted,neutral") and csv[1].split(",")[0] == "neutral"
    assert sum(int(v) for line in csv[1:] for v in line.split(",")[1:]) == len(y)
    for png in ("confusion_matrix.png", "reliability.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
