from pathlib import Path

import numpy as np
import pytest

from _synthetic import tiny_trained
from ser_pipeline.errors import FeatureSpecMismatch
from ser_pipeline.inference.predict import pool_windows, predict_proba, predictions_frame
from ser_pipeline.labels import EMOTIONS

SCHEMA = Path(__file__).resolve().parents[1] / "sql" / "schema.sql"


@pytest.fixture(scope="module")
def trained():
    return tiny_trained("pooled", "global", epochs=2)


def test_a_model_refuses_features_of_another_spec(trained):
    from ser_pipeline.features.spec import FeatureSpec

    model, feats, items, _ = trained
    advice = "re-extract the features with the model's spec or use a model trained on this one"
    with pytest.raises(FeatureSpecMismatch) as refused:
        predict_proba(model, feats, items.speaker, "spec-b")
    assert str(refused.value) == (f"model (pooled/mfcc) was trained on features with spec spec-a, "
                                  f"but these features have spec spec-b; {advice}")
    # a FeatureSpec is refused by its hash, shortened to 12 digits in the message
    spec = FeatureSpec()
    with pytest.raises(FeatureSpecMismatch) as refused:
        predict_proba(model, feats, items.speaker, spec)
    assert str(refused.value) == (f"model (pooled/mfcc) was trained on features with spec spec-a, "
                                  f"but these features have spec {spec.hash[:12]}; {advice}")


def test_windows_are_pooled_per_utterance(trained):
    model, feats, items, _ = trained
    windows = predict_proba(model, feats, None, "spec-a")
    assert windows.shape == (len(items), len(model.labels)) and windows.dtype == np.float32
    np.testing.assert_allclose(windows.sum(axis=1), 1.0, atol=1e-5)
    ids = [f"u{i // 3}" for i in range(len(windows))]
    pooled = predict_proba(model, feats, None, "spec-a", utterance_ids=ids)
    assert pooled.shape == (len(windows) // 3, len(model.labels)) and pooled.dtype == np.float32
    np.testing.assert_allclose(pooled, windows.reshape(-1, 3, windows.shape[1]).mean(axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0, atol=1e-5)


def test_pool_windows_keeps_first_appearance_order():
    ids, pooled = pool_windows(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), ["b", "a", "b"])
    assert ids == ["b", "a"]
    assert pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled, np.array([[0.75, 0.25], [0.0, 1.0]], np.float32))
    with pytest.raises(ValueError) as refused:
        pool_windows(np.zeros((3, 2)), ["a", "b"])
    assert str(refused.value) == "2 utterance ids for 3 windows"


def _warehouse_prediction_columns() -> list[str]:
    """The predictions table's columns, from the warehouse schema itself (an in-memory DuckDB)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(SCHEMA.read_text())
        rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'predictions' "
                           "ORDER BY ordinal_position").fetchall()
    finally:
        con.close()
    return [name for (name,) in rows]


PREDICTION_COLUMNS = ["utterance_id", "model_version", "label", "confidence", *(f"p_{e}" for e in EMOTIONS),
                      "context_label", "context_confidence", *(f"ctx_p_{e}" for e in EMOTIONS)]


def test_prediction_columns_are_the_warehouse_tables_less_what_the_load_adds():
    assert _warehouse_prediction_columns() == [*PREDICTION_COLUMNS, "ingest_run_id", "predicted_at"]


def test_predictions_frame_has_a_column_per_emotion():
    labels = ["neutral", "happy", "sad"]
    proba = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    frame = predictions_frame(["u1", "u2"], proba, labels, "v1", context_proba=proba[::-1])
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame.utterance_id.tolist() == ["u1", "u2"] and frame.model_version.tolist() == ["v1", "v1"]
    assert frame.label.tolist() == ["happy", "neutral"] and frame.confidence.tolist() == [0.7, 0.6]
    assert frame.context_label.tolist() == ["neutral", "happy"] and frame.context_confidence.tolist() == [0.6, 0.7]
    for prefix, given in (("p_", proba), ("ctx_p_", proba[::-1])):
        for emotion in EMOTIONS:
            column = frame[f"{prefix}{emotion}"].to_numpy()
            if emotion in labels:
                np.testing.assert_array_equal(column, given[:, labels.index(emotion)])
            else:
                assert np.isnan(column).all(), f"{prefix}{emotion}"
        row_sums = frame[[f"{prefix}{e}" for e in EMOTIONS]].sum(axis=1, skipna=True)
        np.testing.assert_allclose(row_sums, 1.0, rtol=0, atol=1e-12)


def test_predictions_frame_without_context_has_the_same_columns_left_empty():
    proba = np.array([[0.25, 0.75]])
    frame = predictions_frame(["u1"], proba, ["sad", "angry"], "v2")
    assert list(frame.columns) == PREDICTION_COLUMNS
    assert frame.label.tolist() == ["angry"] and frame.confidence.tolist() == [0.75]
    assert (frame.p_sad.tolist(), frame.p_angry.tolist()) == ([0.25], [0.75])
    assert frame.context_label.tolist() == [None] and np.isnan(frame.context_confidence).all()
    assert frame[[f"ctx_p_{e}" for e in EMOTIONS]].isna().all().all()


@pytest.mark.parametrize("n, batch_size", [(1, 256), (37, 16), (64, 64), (300, 128)])
def test_fixed_shape_batches_give_the_models_own_predictions(trained, n, batch_size):
    from ser_pipeline.inference.predict import predict_batches

    model, feats, _, _ = trained
    x = np.resize(np.asarray(feats["mfcc"], np.float32), (n, *feats["mfcc"].shape[1:]))[..., None]
    expected = np.asarray(model.model.predict(x, verbose=0))
    got = predict_batches(model.model, x, batch_size)
    assert got.shape == (n, expected.shape[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
