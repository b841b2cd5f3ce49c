"""The Parquet feature store: append-only partitions, skip by content hash, atomic files, S3."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ser_pipeline import storage
from ser_pipeline.errors import FeatureSpecMismatch
from ser_pipeline.features.store import feature_files, read_features, stored_hashes, write_features
from ser_pipeline.features.spec import FeatureSpec

SPEC = FeatureSpec()


def make_batch(source: str, n_files: int, windows: int = 2, seed: int = 0, first: int = 0):
    """``n_files`` utterances of ``windows`` windows each, with distinct random features."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(first, first + n_files):
        for w in range(windows):
            rows.append({
                "source": source, "group": f"{source}:spk{i % 2}", "speaker": f"{source}:spk{i % 2}",
                "utterance_id": f"{source}:utt{i:03d}", "window": w, "content_hash": f"hash-{source}-{i}",
                "emotion": ["happy", "sad"][i % 2], "duration_s": 1.5 + i,
            })
    keys = pd.DataFrame(rows)
    feats = {f: rng.normal(size=(len(keys), r, SPEC.n_frames)).astype(np.float32) for f, r in SPEC.families.items()}
    return keys, feats


def test_round_trip_keeps_rows_aligned_with_matrices(tmp_path):
    store = tmp_path.as_uri()
    keys, feats = make_batch("ravdess", 3)
    url = write_features(store, keys, feats, SPEC)
    assert url and f"/source=ravdess/spec={SPEC.hash}/part-" in url and url.endswith(".parquet")
    frame, arrays = read_features(store, SPEC, families=("mfcc", "contrast"))
    assert list(frame["utterance_id"]) == list(keys["utterance_id"])
    assert set(arrays) == {"mfcc", "contrast"}
    np.testing.assert_array_equal(arrays["mfcc"], feats["mfcc"])
    np.testing.assert_array_equal(arrays["contrast"], feats["contrast"])
    assert (frame["spec_hash"] == SPEC.hash).all()
    assert list(frame["emotion"]) == list(keys["emotion"]) and frame["duration_s"].tolist() == keys["duration_s"].tolist()
    # The file is self-describing: fixed-size list columns, shapes and spec in the schema metadata.
    schema = pq.read_schema(url.removeprefix("file://"))
    assert schema.field("mel").type.list_size == 128 * 173
    assert b"ser.feature_shapes" in schema.metadata and b"ser.spec" in schema.metadata


def test_rerun_writes_nothing_and_new_batches_add_files(tmp_path):
    store = tmp_path.as_uri()
    keys, feats = make_batch("tess", 4)
    first = write_features(store, keys, feats, SPEC)
    assert write_features(store, keys, feats, SPEC) is None
    assert stored_hashes(store, SPEC) == set(keys["content_hash"])
    # A batch overlapping the stored one adds only the new utterances, in a new file.
    more_keys, more_feats = make_batch("tess", 4, first=2, seed=1)
    second = write_features(store, more_keys, more_feats, SPEC)
    assert second and second != first
    assert feature_files(store, SPEC) == sorted([first, second])
    frame, arrays = read_features(store, SPEC)
    assert frame["utterance_id"].nunique() == 6 and len(frame) == 12 == len(arrays["mfcc"])
    # The overlapping utterances kept their first features.
    row = frame.index[(frame["utterance_id"] == "tess:utt002") & (frame["window"] == 0)][0]
    np.testing.assert_array_equal(arrays["mfcc"][row], feats["mfcc"][4])


def test_sources_and_specs_are_separate_partitions(tmp_path):
    store = tmp_path.as_uri()
    write_features(store, *make_batch("ravdess", 2), SPEC)
    write_features(store, *make_batch("survey/2026 Q1", 1), SPEC)  # odd characters become a safe folder name
    other = dataclasses.replace(SPEC, max_windows=3)
    write_features(store, *make_batch("ravdess", 1, seed=5), other)
    assert len(read_features(store, SPEC)[0]) == 6
    assert len(read_features(store, SPEC, sources=["survey/2026 Q1"])[0]) == 2
    assert len(read_features(store, other)[0]) == 2
    assert {p.parent.parent.name for p in tmp_path.rglob("*.parquet")} == {"source=ravdess", "source=survey%2F2026%20Q1"}
    with pytest.raises(ValueError, match="one source"):
        keys = pd.concat([make_batch("a", 1)[0], make_batch("b", 1)[0]], ignore_index=True)
        write_features(store, keys, make_batch("a", 2, windows=1)[1], SPEC)


def test_readers_ignore_temp_files_and_deduplicate(tmp_path):
    store = tmp_path.as_uri()
    keys, feats = make_batch("ravdess", 2)
    url = write_features(store, keys, feats, SPEC)
    folder = url.removeprefix("file://").rsplit("/", 1)[0]
    # A writer that died mid-write leaves a temp file; a crash between runs left a duplicate.
    (Path(folder) / ".tmp-dead-part-x.parquet").write_bytes(b"PAR1 half written")
    storage.write_bytes_atomic(f"file://{folder}/part-duplicate.parquet", storage.read_bytes(url))
    frame, arrays = read_features(store, SPEC, families=("mel",))
    assert len(frame) == 4 == len(arrays["mel"])
    assert not frame.duplicated(["utterance_id", "window"]).any()
    assert stored_hashes(store, SPEC) == set(keys["content_hash"])


def test_empty_store_and_bad_input(tmp_path):
    store = (tmp_path / "nothing").as_uri()
    frame, arrays = read_features(store, SPEC, families=("mfcc", "chroma"))
    assert frame.empty and arrays["chroma"].shape == (0, 12, 173)
    assert stored_hashes(store, SPEC) == set()
    keys, feats = make_batch("x", 1)
    with pytest.raises(ValueError, match="shape"):
        write_features(store, keys, {"mfcc": feats["mfcc"][:, :20]}, SPEC)
    with pytest.raises(ValueError, match="lack"):
        write_features(store, keys.drop(columns=["window"]), feats, SPEC)
    with pytest.raises(ValueError, match="unknown feature family"):
        read_features(store, SPEC, families=("pitch",))


def test_missing_family_and_foreign_spec_are_clear_errors(tmp_path):
    store = tmp_path.as_uri()
    keys, feats = make_batch("ravdess", 1)
    url = write_features(store, keys, {"mfcc": feats["mfcc"]}, SPEC)
    with pytest.raises(KeyError, match="mel"):
        read_features(store, SPEC, families=("mel",))
    # A file of another spec copied into this spec's folder is refused, not silently mixed in.
    other = dataclasses.replace(SPEC, n_mfcc=20)
    foreign = write_features((tmp_path / "other").as_uri(), keys, {"mfcc": feats["mfcc"][:, :20]}, other)
    storage.write_bytes_atomic(url.rsplit("/", 1)[0] + "/part-foreign.parquet", storage.read_bytes(foreign))
    with pytest.raises(FeatureSpecMismatch):
        read_features(store, SPEC)


@pytest.mark.s3
def test_same_store_on_s3(monkeypatch):
    from tests.support.s3 import moto_server, use_endpoint

    with moto_server() as endpoint:
        use_endpoint(monkeypatch, endpoint)
        fs, _ = storage.filesystem("s3://features")
        fs.mkdir("features")
        store = "s3://features/store"
        keys, feats = make_batch("ravdess", 3)
        url = write_features(store, keys, feats, SPEC)
        assert url.startswith("s3://features/store/source=ravdess/")
        assert write_features(store, keys, feats, SPEC) is None
        fs.pipe(f"features/store/source=ravdess/spec={SPEC.hash}/.tmp-abandoned.parquet", b"partial")
        assert stored_hashes(store, SPEC) == set(keys["content_hash"])
        frame, arrays = read_features(store, SPEC, families=("mfcc", "chroma"))
        assert len(frame) == 6
        np.testing.assert_array_equal(arrays["chroma"], feats["chroma"])
