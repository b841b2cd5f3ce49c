"""The Parquet feature store: one row per utterance window, append-only, versioned by spec.

Layout under ``store_url`` (``file://`` or ``s3://``, same code)::

    source=<corpus or survey>/spec=<FeatureSpec.hash>/part-<uuid>.parquet

Each file holds one batch of one source. A new batch adds a file and never rewrites an old
one, so concurrent writers and crashed runs cannot damage what is stored. Files appear
atomically (written under a ``.tmp-`` name, then renamed); readers only look at
``part-*.parquet`` and so never see a half-written file.

The keys, one meaning each whoever writes them (they are stored, so they keep their names):

- ``source``: the store's partition, where the audio came from: a corpus name (training) or
  a survey id (the nightly run);
- ``group``: the unit read back together within a source: a corpus speaker, or a session;
- ``content_hash``: the content address that makes a re-run write nothing: a corpus clip's
  sha256, or an archive utterance's id, which is itself the hash of its recording's content
  and its span (``segmentation.utterance_id``).

Columns: the keys ``source, group, speaker, utterance_id, window, content_hash, spec_hash``,
whatever metadata the caller passes (emotion, gender, corpus, path, duration_s, ...), and one
column per feature family holding the matrix flattened row-major as
``fixed_size_list<float32>[rows * frames]``. The shapes and the full spec are in the schema
metadata (``ser.feature_shapes``, ``ser.spec``).

Re-running over the same audio writes nothing: rows whose ``content_hash`` is already stored
for the spec are dropped before writing (:func:`stored_hashes` reads only that column). If a
crash ever left a duplicate, :func:`read_features` keeps one row per ``(utterance_id, window)``.
"""

from __future__ import annotations

import io
import json
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.errors import FeatureSpecMismatch, FeatureStoreError
from ser_pipeline.features.spec import FeatureSpec
from ser_pipeline.settings import Settings
from ser_pipeline.storage import filesystem, join, to_url, write_bytes_atomic

KEY_COLUMNS: tuple[str, ...] = ("source", "group", "speaker", "utterance_id", "window", "content_hash", "spec_hash")
SHAPES_KEY = b"ser.feature_shapes"
SPEC_KEY = b"ser.spec"


def partition_name(key: str, value: str) -> str:
    """``key=value`` with the value percent-encoded, so any survey id or corpus name is a safe folder."""
    return f"{key}={quote(str(value), safe='')}"


def spec_dir(store_url: str, source: str, spec: FeatureSpec) -> str:
    return join(store_url, partition_name("source", source), partition_name("spec", spec.hash))


def feature_files(
    store_url: str, spec: FeatureSpec, sources: Iterable[str] | None = None, settings: Settings | None = None
) -> list[str]:
    """The complete Parquet files of ``spec`` (all sources, or only ``sources``), as URLs, sorted.

    Temporary files (``.tmp-*``) and anything not named ``part-*.parquet`` are ignored.
    """
    fs, root = filesystem(store_url, settings)
    fs.invalidate_cache(root)  # another process may have added files since s3fs cached a listing
    if not fs.exists(root):
        return []
    wanted_spec = partition_name("spec", spec.hash)
    wanted_sources = None if sources is None else {partition_name("source", s) for s in sources}
    found = []
    for path in fs.find(root):
        rel = posixpath.relpath(path, root.rstrip("/")).split("/")
        if len(rel) != 3:
            continue
        source_part, spec_part, name = rel
        if spec_part != wanted_spec or not name.startswith("part-") or not name.endswith(".parquet"):
            continue
        if wanted_sources is not None and source_part not in wanted_sources:
            continue
        found.append(to_url(fs, path))
    return sorted(found)


def _read_table(url: str, columns: list[str] | None, settings: Settings | None) -> pa.Table:
    fs, path = filesystem(url, settings)
    with fs.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns)


def stored_hashes(store_url: str, spec: FeatureSpec, sources: Iterable[str] | None = None, settings: Settings | None = None) -> set[str]:
    """Content hashes already stored for ``spec`` (reads only the ``content_hash`` column)."""
    hashes: set[str] = set()
    for url in feature_files(store_url, spec, sources, settings):
        hashes.update(_read_table(url, ["content_hash"], settings).column("content_hash").to_pylist())
    return hashes


def _feature_column(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    width = int(np.prod(matrix.shape[1:]))
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), width)


def write_features(
    store_url: str,
    keys: pd.DataFrame,
    feats: Mapping[str, np.ndarray],
    spec: FeatureSpec,
    *,
    skip_hashes: set[str] | None = None,
    settings: Settings | None = None,
) -> str | None:
    """Append one batch of one source; the new file's URL, or None when nothing was new.

    ``keys``: one row per window with ``source, group, speaker, utterance_id, window,
    content_hash`` plus any metadata columns; ``feats``: ``{family: (len(keys), rows, frames)}``.
    Rows whose ``content_hash`` is already stored for ``spec`` (``skip_hashes``, or read from
    the store when not given) are left out. Raises :class:`FeatureStoreError` when the file
    cannot be written; nothing of the batch is then stored.
    """
    missing = [c for c in KEY_COLUMNS if c != "spec_hash" and c not in keys.columns]
    if missing:
        raise ValueError(f"write_features: keys lack the column(s) {missing}")
    sources = keys["source"].unique()
    if len(sources) > 1:
        raise ValueError(f"write_features writes one source per call; got {sorted(map(str, sources))}")
    for family, matrix in feats.items():
        if family not in spec.families:
            raise ValueError(f"unknown feature family {family!r}; the spec has {list(spec.families)}")
        if matrix.shape != (len(keys), *spec.shapes[family]):
            raise ValueError(f"{family}: shape {matrix.shape}, expected {(len(keys), *spec.shapes[family])}")
    if keys.empty:
        return None
    source = str(sources[0])
    if skip_hashes is None:
        skip_hashes = stored_hashes(store_url, spec, [source], settings)
    keep = ~keys["content_hash"].isin(skip_hashes).to_numpy()
    if not keep.any():
        return None

    frame = keys.loc[keep].reset_index(drop=True).copy()
    frame["spec_hash"] = spec.hash
    frame["window"] = frame["window"].astype("int32")
    for column in KEY_COLUMNS:
        if column != "window":
            frame[column] = frame[column].astype(str)
    ordered = list(KEY_COLUMNS) + [c for c in frame.columns if c not in KEY_COLUMNS]
    table = pa.Table.from_pandas(frame[ordered], preserve_index=False)
    shapes = {}
    for family in spec.families:  # storage order, whatever order the caller used
        if family in feats:
            table = table.append_column(family, _feature_column(feats[family][keep]))
            shapes[family] = list(spec.shapes[family])
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), SHAPES_KEY: json.dumps(shapes).encode(), SPEC_KEY: json.dumps(spec.to_dict()).encode()}
    )
    buffer = io.BytesIO()
    feature_columns = [name for name in table.column_names if name in spec.families]
    key_columns = [name for name in table.column_names if name not in spec.families]
    # Dictionary encoding and min/max statistics pay off for the keys only: on the float
    # matrices they cost half the write time and read nothing back. Byte-stream-split + LZ4
    # makes the matrices smaller than the default Snappy and reads them back 3x faster.
    pq.write_table(table, buffer, compression="lz4", use_dictionary=key_columns, write_statistics=key_columns,
                   use_byte_stream_split=[f"{name}.list.element" for name in feature_columns])
    url = join(spec_dir(store_url, source, spec), f"part-{uuid.uuid4().hex}.parquet")
    try:
        write_bytes_atomic(url, buffer.getvalue(), settings)
    except OSError as exc:  # disk full, read-only, permission denied, the object store refusing
        raise FeatureStoreError(store_url, f"{type(exc).__name__}: {exc}") from exc
    return url


def _matrices(column: pa.ChunkedArray, shape: tuple[int, int]) -> np.ndarray:
    parts = [chunk.flatten().to_numpy(zero_copy_only=False).reshape(-1, *shape) for chunk in column.chunks if len(chunk)]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, *shape), np.float32)


def read_features(
    store_url: str,
    spec: FeatureSpec,
    sources: Iterable[str] | None = None,
    families: Iterable[str] = ("mfcc",),
    settings: Settings | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Every stored window of ``spec``: keys and metadata, and ``{family: (n, rows, frames) float32}``.

    Rows are sorted by ``(source, utterance_id, window)`` and unique on ``(utterance_id,
    window)``; row ``i`` of the frame belongs to row ``i`` of every array.
    """
    families = list(families)
    for family in families:
        if family not in spec.families:
            raise ValueError(f"unknown feature family {family!r}; the spec has {list(spec.families)}")
    tables = []
    for url in feature_files(store_url, spec, sources, settings):
        fs, path = filesystem(url, settings)
        with fs.open(path, "rb") as fh:
            schema = pq.read_schema(fh)
        meta = schema.metadata or {}
        stored_spec = json.loads(meta.get(SPEC_KEY, b"{}"))
        if stored_spec and FeatureSpec.from_dict(stored_spec).hash != spec.hash:
            raise FeatureSpecMismatch(f"{url}: stored with spec {FeatureSpec.from_dict(stored_spec).hash}, asked for {spec.hash}")
        absent = [f for f in families if f not in schema.names]
        if absent:
            raise KeyError(f"{url} holds no {absent} features (stored: {[f for f in spec.families if f in schema.names]})")
        wanted = [n for n in schema.names if n not in spec.families or n in families]
        tables.append(_read_table(url, wanted, settings).replace_schema_metadata(None))
    shapes = {f: spec.shapes[f] for f in families}
    if not tables:
        return pd.DataFrame(columns=list(KEY_COLUMNS)), {f: np.zeros((0, *s), np.float32) for f, s in shapes.items()}

    table = pa.concat_tables(tables, promote_options="permissive")
    frame = table.drop_columns(families).to_pandas()
    arrays = {f: _matrices(table.column(f), shapes[f]) for f in families}
    order = frame.sort_values(["source", "utterance_id", "window"], kind="stable").index.to_numpy()
    frame = frame.loc[order].reset_index(drop=True)
    unique = ~frame.duplicated(["utterance_id", "window"]).to_numpy()
    frame = frame.loc[unique].reset_index(drop=True)
    arrays = {f: a[order][unique] for f, a in arrays.items()}
    return frame, arrays
