"""Each Great Expectations suite passes on good data and fails, naming the expectation, on bad."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from ser_pipeline.errors import ValidationFailed
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.archive.manifest import MANIFEST_COLUMNS, OPTIONAL_MANIFEST_COLUMNS, REQUIRED_MANIFEST_COLUMNS
from ser_pipeline.resources import EXPECTATIONS_DIR, PROJECT_ROOT
from ser_pipeline.validation import (
    SUITES,
    load_suite,
    manifest_columns,
    validate_features,
    validate_manifest,
    validate_predictions,
)


def _failed(result, expectation, column=None):
    return any(f.expectation == expectation and (column is None or f.column == column) for f in result.failed)


def test_suites_are_gx_suites_kept_as_json():
    from great_expectations.core import ExpectationSuite

    for name in SUITES:
        data = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
        suite = ExpectationSuite(**data)
        assert suite.name == name
        assert len(suite.expectations) == len(data["expectations"]) > 3


# -- manifest --------------------------------------------------------------------------------


@pytest.fixture
def survey(tmp_path):
    folder = tmp_path / "survey-1"
    folder.mkdir()
    for sid in ("s1", "s2", "s3"):
        (folder / f"{sid}.wav").write_bytes(b"RIFF")
    frame = pd.DataFrame(
        {
            "session_id": ["s1", "s2", "s3"],
            "survey_id": ["survey-1"] * 3,
            "audio_file": ["s1.wav", "s2.wav", "s3.wav"],
            "recorded_at": ["2026-03-01T10:00:00+01:00", "2026-03-01T14:30:00Z", "2026-03-02 09:15:00-05:00"],
            "moderator": ["ann", "ann", "bob"],
            "market": ["DE", "DE", "US"],
            "location": ["Berlin", "Berlin", "Boston"],
            "participants": ["p1;p2", "p3;p4;p5", "p6"],
            "metadata": ['{"topic": "snacks"}', "{}", '{"wave": 2}'],
        }
    )
    return folder.as_uri(), frame


def test_manifest_suite_passes_on_a_good_manifest(survey):
    url, frame = survey
    result = validate_manifest(frame, url)
    assert result.success, result.summary()
    assert result.rows == 3 and result.evaluated > 10 and not result.failed


def test_manifest_suite_fails_on_duplicate_ids_bad_timestamps_and_missing_files(survey):
    url, frame = survey
    bad = frame.copy()
    bad.loc[1, "session_id"] = "s1"
    bad.loc[2, "recorded_at"] = "2026-02-30T10:00:00+01:00"  # no 30 February
    bad.loc[0, "recorded_at"] = "2026-03-01T10:00:00"  # no offset
    bad.loc[2, "audio_file"] = "gone.wav"
    result = validate_manifest(bad, url)
    assert not result.success
    assert _failed(result, "expect_column_values_to_be_unique", "session_id")
    assert _failed(result, "expect_column_values_to_match_regex", "recorded_at")
    assert _failed(result, "expect_column_values_to_be_in_set", "recorded_at_valid")
    assert _failed(result, "expect_column_values_to_be_in_set", "audio_file_exists")
    assert "expect_column_values_to_be_unique on session_id" in result.summary()
    with pytest.raises(ValidationFailed, match="audio_file_exists"):
        result.raise_for_failure()


def test_manifest_suite_fails_on_a_missing_required_column(survey):
    url, frame = survey
    result = validate_manifest(frame.drop(columns=["participants"]), url)
    assert _failed(result, "expect_column_to_exist", "participants")


def test_a_manifest_of_only_the_required_columns_passes_and_optional_checks_are_skipped(survey):
    url, frame = survey
    minimal = frame[["session_id", "survey_id", "audio_file", "recorded_at", "participants"]]
    result = validate_manifest(minimal, url)
    assert result.success, result.summary()
    assert result.skipped == ("expect_column_values_to_be_json_parseable(metadata): optional column metadata absent",
                              "expect_column_values_to_match_regex(language): optional column language absent")


def test_an_optional_column_keeps_its_value_checks_when_present(survey):
    url, frame = survey
    bad = frame.copy()
    bad.loc[1, "metadata"] = "{not json"
    bad.loc[2, "metadata"] = None  # blank is fine
    bad["language"] = "en"
    bad.loc[2, "language"] = None  # blank: detected
    result = validate_manifest(bad, url)
    assert _failed(result, "expect_column_values_to_be_json_parseable", "metadata") and len(result.failed) == 1
    assert not result.skipped
    bad.loc[1, "language"] = "English"
    assert _failed(validate_manifest(bad, url), "expect_column_values_to_match_regex", "language")
    assert validate_manifest(frame.drop(columns=["moderator", "market", "location"]), url).success


def test_json_manifest_rows_are_checked_as_documented(survey):
    """A JSON manifest lists participants as a list and metadata as an object."""
    url, frame = survey
    rows = frame.astype(object).copy()
    rows["participants"] = [["p1", "p2"], ["p3"], ["p6"]]
    rows["metadata"] = [{"topic": "snacks"}, None, {}]
    result = validate_manifest(rows, url)
    assert result.success, result.summary()
    rows.loc[1, "participants"] = ["p 3"]
    assert _failed(validate_manifest(rows, url), "expect_column_values_to_match_regex", "participants")


def _docs_manifest_table() -> dict[str, bool]:
    """docs/WAREHOUSE.md's manifest.csv column table as {column: required}."""
    text = (PROJECT_ROOT / "docs" / "WAREHOUSE.md").read_text()
    section = text.split("## Manifest schema", 1)[1].split("\n## ", 1)[0]
    table = section.split("`manifest.csv`, one row per session:", 1)[1].strip().split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    assert rows[0][:2] == ["column", "required"] and set(rows[1][0]) == {"-"}
    columns: dict[str, bool] = {}
    for cells in rows[2:]:
        assert cells[1] in ("yes", "no"), cells
        for column in re.findall(r"`([^`]+)`", cells[0]):
            columns[column] = cells[1] == "yes"
    return columns


def test_docs_suite_and_reader_state_one_manifest_contract():
    required, optional = manifest_columns()
    docs = _docs_manifest_table()
    assert {c for c, req in docs.items() if req} == set(required)
    assert {c for c, req in docs.items() if not req} == set(optional)
    assert set(required) == set(REQUIRED_MANIFEST_COLUMNS) and set(optional) == set(OPTIONAL_MANIFEST_COLUMNS)
    assert set(MANIFEST_COLUMNS) == set(required) | set(optional) and not set(required) & set(optional)
    # GX fails any expectation on a missing column: each one on an optional column must be marked
    # optional (the runner then skips it when absent), and none on a required column may be
    for exp in load_suite("manifest")["expectations"]:
        column = exp["kwargs"].get("column")
        assert bool(exp.get("meta", {}).get("optional")) == (column in optional), exp


def test_manifest_files_are_looked_up_on_the_object_store_path_given(survey, tmp_path):
    _, frame = survey
    result = validate_manifest(frame, (tmp_path / "elsewhere").as_uri())
    assert _failed(result, "expect_column_values_to_be_in_set", "audio_file_exists")
    failure = next(f for f in result.failed if f.column == "audio_file_exists")
    assert failure.unexpected_count == 3


# -- features --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """The FeatureSpec attributes the features suite reads."""

    n_frames: int = 173
    families: dict = None

    @property
    def frames(self) -> int:
        return self.n_frames

    def __post_init__(self):
        object.__setattr__(self, "families", {"mfcc": 40, "chroma": 12, "mel": 128, "contrast": 7})


def _features(n_utts=3, windows=2, seed=0):
    rng = np.random.default_rng(seed)
    n = n_utts * windows
    keys = pd.DataFrame({"utterance_id": np.repeat([f"u{i}" for i in range(n_utts)], windows), "window": np.tile(np.arange(windows), n_utts)})
    feats = {
        "mfcc": rng.normal(0, 50, (n, 40, 173)).astype(np.float32),
        "chroma": rng.uniform(0, 1, (n, 12, 173)).astype(np.float32),
        "mel": rng.uniform(-80, 20, (n, 128, 173)).astype(np.float32),
        "contrast": rng.uniform(0, 60, (n, 7, 173)).astype(np.float32),
    }
    return keys, feats


def test_features_suite_passes_on_good_features():
    keys, feats = _features()
    result = validate_features(keys, feats, _Spec())
    assert result.success, result.summary()
    assert result.rows == 6 and not result.skipped


def test_features_suite_skips_families_not_in_the_batch():
    keys, feats = _features()
    result = validate_features(keys, {"mfcc": feats["mfcc"]}, _Spec())
    assert result.success, result.summary()
    assert len(result.skipped) == 15 and all("not in batch" in s for s in result.skipped)


def test_features_suite_fails_on_nonfinite_values_wrong_shapes_implausible_ranges_and_duplicate_windows():
    keys, feats = _features()
    feats["mfcc"][2, 5, 7] = np.nan
    feats["chroma"][1, 0, 0] = 1.7
    feats["contrast"] = feats["contrast"][:, :6, :]  # a row short
    keys.loc[1, "window"] = 0  # u0 window 0 twice
    result = validate_features(keys, feats, _Spec())
    assert not result.success
    assert _failed(result, "expect_column_values_to_be_in_set", "mfcc_nonfinite")
    assert _failed(result, "expect_column_values_to_be_between", "chroma_max")
    assert _failed(result, "expect_column_values_to_be_between", "contrast_rows")
    assert _failed(result, "expect_compound_columns_to_be_unique")
    assert len(result.failed) == 4


def test_features_with_misaligned_keys_are_a_usage_error():
    keys, feats = _features()
    with pytest.raises(ValueError, match="key rows"):
        validate_features(keys.iloc[:3], feats, _Spec())


# -- predictions -----------------------------------------------------------------------------


def _predictions(n=60, labels=EMOTIONS, seed=0):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(len(labels)), n)
    frame = pd.DataFrame({"utterance_id": [f"u{i}" for i in range(n)], "model_version": "v1"})
    frame["label"] = [labels[i] for i in proba.argmax(1)]
    frame["confidence"] = proba.max(1)
    for e in EMOTIONS:
        frame[f"p_{e}"] = proba[:, labels.index(e)] if e in labels else np.nan
    frame["context_label"] = frame["label"]
    frame["context_confidence"] = frame["confidence"]
    for e in EMOTIONS:
        frame[f"ctx_p_{e}"] = frame[f"p_{e}"]
    return frame


def test_predictions_suite_passes_on_good_predictions():
    result = validate_predictions(_predictions())
    assert result.success, result.summary()
    assert not result.skipped


def test_predictions_of_a_merged_label_set_leave_merged_emotions_empty_and_pass():
    labels = tuple(e for e in EMOTIONS if e != "calm")
    result = validate_predictions(_predictions(labels=labels), labels=labels)
    assert result.success, result.summary()


def test_predictions_suite_fails_on_bad_probabilities_and_unknown_labels():
    frame = _predictions()
    frame.loc[3, "p_happy"] = frame.loc[3, "p_happy"] + 0.2  # no longer sums to 1
    frame.loc[4, "p_sad"] = -0.1
    frame.loc[5, "label"] = "bored"
    result = validate_predictions(frame)
    assert _failed(result, "expect_column_values_to_be_between", "p_sum")
    assert _failed(result, "expect_column_values_to_be_between", "p_min")  # p_sad < 0
    assert _failed(result, "expect_column_values_to_be_in_set", "label")
    bad_label = next(f for f in result.failed if f.column == "label")
    assert bad_label.unexpected_examples == ("bored",)


def test_a_prediction_frame_missing_a_column_fails():
    result = validate_predictions(_predictions().drop(columns=["ctx_p_sad"]))
    missing = next(f for f in result.failed if f.expectation == "expect_table_columns_to_match_set")
    assert "ctx_p_sad" in str(missing.observed) or "ctx_p_sad" in missing.describe()


def test_a_collapsed_batch_fails_when_large_enough_to_judge():
    frame = _predictions(n=60)
    frame["label"] = "neutral"
    result = validate_predictions(frame)
    assert _failed(result, "expect_column_unique_value_count_to_be_between", "label")
    assert _failed(result, "expect_column_max_to_be_between", "label_share")


def test_a_small_batch_on_one_class_is_not_judged_for_collapse():
    frame = _predictions(n=10)
    frame["label"] = "neutral"
    frame["context_label"] = "neutral"
    result = validate_predictions(frame)
    assert result.success, result.summary()
    assert len(result.skipped) == 2 and all("below 50 rows" in s for s in result.skipped)


def test_duplicate_predictions_for_one_utterance_fail():
    frame = _predictions(n=5)
    frame.loc[4, "utterance_id"] = "u0"
    result = validate_predictions(frame)
    assert _failed(result, "expect_column_values_to_be_unique", "utterance_id")


def test_result_serialises_to_plain_json():
    frame = _predictions(n=5)
    frame.loc[0, "label"] = "bored"
    data = validate_predictions(frame).to_dict()
    assert json.loads(json.dumps(data))["suite"] == "predictions"
    assert data["success"] is False and data["failed"][0]["column"] == "label"
    assert load_suite("predictions")["name"] == "predictions"


@pytest.mark.realdata
def test_features_of_real_speech_silence_and_full_scale_noise_are_plausible(ravdess_dir, tess_dir, quirks_dir):
    """The suite's ranges hold for real recordings (all quirks included) and the extremes."""
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.features.spec import FeatureSpec, clip_windows
    from ser_pipeline.features.frames import extract_features

    spec = FeatureSpec()
    files = sorted(ravdess_dir.glob("*/*.flac"))[::60] + sorted(tess_dir.glob("*/*.wav"))[::60] + sorted(quirks_dir.iterdir())
    rows, windows = [], []
    for path in files:
        for i, window in enumerate(clip_windows(load_audio(str(path)).samples, spec)):
            rows.append({"utterance_id": path.name, "window": i})
            windows.append(window)
    rng = np.random.default_rng(0)
    windows += [np.zeros(spec.n_samples, np.float32), np.clip(rng.normal(0, 1, spec.n_samples), -1, 1).astype(np.float32)]
    rows += [{"utterance_id": "silence", "window": 0}, {"utterance_id": "noise", "window": 0}]
    result = validate_features(pd.DataFrame(rows), extract_features(windows, spec), spec)
    assert result.success, result.summary()
