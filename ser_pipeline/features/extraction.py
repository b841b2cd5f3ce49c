"""Featurise many audio files in parallel processes into the feature store.

:func:`featurise` takes corpus items (anything with the :class:`~ser_pipeline.training.corpora.CorpusItem`
attributes) or plain audio URLs. Files go to worker processes in chunks (one task per chunk
amortises the inter-process overhead); a worker reads each file once, hashes its bytes, skips
it when that content is already stored for the spec, otherwise decodes it
(:func:`~ser_pipeline.audio.decode.load_audio`), cuts it into windows (:func:`~ser_pipeline.features.frames.clip_windows`)
and featurises the chunk's windows in one batched call. The parent writes results in batches
of about ``flush_rows`` windows per source (:func:`~ser_pipeline.features.store.write_features`).

A file that cannot be decoded is recorded with its reason and the rest go on; re-running is
safe and writes nothing for what is already stored.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fsspec.core import strip_protocol

from ser_pipeline.errors import AudioDecodeError
from ser_pipeline.features.spec import FeatureSpec, clip_windows
from ser_pipeline.features.frames import extract_features
from ser_pipeline.settings import Settings

PLAIN_SOURCE = "plain"


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclass
class ExtractionSummary:
    """What one :func:`featurise` run did."""

    files_seen: int = 0
    files_written: int = 0  # files whose windows were stored by this run
    rows_written: int = 0  # windows stored by this run
    skipped: int = 0  # files whose content was already stored (or repeated within the run)
    failures: list[Failure] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # Parquet files this run added
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_seen": self.files_seen,
            "files_written": self.files_written,
            "rows_written": self.rows_written,
            "skipped": self.skipped,
            "failed": len(self.failures),
            "failures": [{"path": f.path, "reason": f.reason} for f in self.failures],
            "parquet_files": self.files,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def relative_path(url: str, root_url: str) -> str:
    """``url``'s path below ``root_url`` (either may be a plain path or carry a protocol)."""
    return posixpath.relpath(strip_protocol(url), strip_protocol(root_url).rstrip("/"))


def item_record(item: Any, source_url: str | None = None) -> dict[str, Any]:
    """The metadata of one input: a corpus item's fields, or what a plain URL tells."""
    if isinstance(item, (str, os.PathLike)):
        path = str(item)
        rel = relative_path(path, source_url) if source_url else posixpath.basename(strip_protocol(path))
        stem = posixpath.splitext(rel)[0]
        return {"path": path, "source": PLAIN_SOURCE, "corpus": PLAIN_SOURCE, "speaker": "unknown",
                "utterance_id": f"{PLAIN_SOURCE}:{stem}", "gender": None, "emotion": None,
                "intensity": None, "sentence": None, "age": None}
    return {
        "path": str(item.path),
        "source": item.corpus,
        "corpus": item.corpus,
        "speaker": item.speaker,
        "utterance_id": item.utterance_id,
        "gender": getattr(item, "gender", None),
        "emotion": getattr(item, "emotion", None),
        "intensity": getattr(item, "intensity", None),
        "sentence": getattr(item, "sentence", None),
        "age": getattr(item, "age", None),
    }


# --- worker side ------------------------------------------------------------------------------

_SKIP: frozenset[str] = frozenset()
_SETTINGS: Settings | None = None


def _init_worker(skip: frozenset[str], settings: Settings) -> None:
    global _SKIP, _SETTINGS
    _SKIP, _SETTINGS = skip, settings
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # one process per core already


def _featurise_chunk(
    records: Sequence[dict[str, Any]], spec: FeatureSpec, skip: frozenset[str] | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Featurise a chunk of files; one result dict per file (``status`` ok, skipped or failed)."""
    from ser_pipeline.audio.decode import load_audio
    from ser_pipeline.storage import content_hash, read_bytes

    skip = _SKIP if skip is None else skip
    settings = settings or _SETTINGS
    results: list[dict[str, Any]] = []
    windows: list[np.ndarray] = []
    for record in records:
        path = record["path"]
        try:
            data = read_bytes(path, settings)
            digest = content_hash(data)
            if digest in skip:
                results.append({"status": "skipped", "path": path, "content_hash": digest})
                continue
            audio = load_audio(data, spec.sample_rate)
            clip = clip_windows(audio.samples, spec)
        except AudioDecodeError as exc:
            results.append({"status": "failed", "path": path, "reason": exc.reason})
            continue
        except Exception as exc:  # unreadable file, odd content: recorded, the batch goes on
            results.append({"status": "failed", "path": path, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({"status": "ok", "record": record, "content_hash": digest, "duration_s": audio.duration_s,
                        "n_windows": len(clip), "first": len(windows)})
        windows.extend(clip)
    if windows:
        feats = extract_features(windows, spec)
        for result in results:
            if result["status"] == "ok":
                span = slice(result["first"], result["first"] + result["n_windows"])
                result["feats"] = {name: values[span] for name, values in feats.items()}
    return results


# --- parent side ------------------------------------------------------------------------------


class _Writer:
    """Buffers finished files per source and writes a Parquet file per ~``flush_rows`` windows."""

    def __init__(self, store_url: str, spec: FeatureSpec, stored: set[str], summary: ExtractionSummary,
                 flush_rows: int, settings: Settings):
        self.store_url, self.spec, self.stored, self.summary = store_url, spec, stored, summary
        self.flush_rows, self.settings = flush_rows, settings
        self.pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.pending_rows: dict[str, int] = defaultdict(int)

    def add(self, result: dict[str, Any]) -> None:
        if result["content_hash"] in self.stored:  # the same bytes twice in one run
            self.summary.skipped += 1
            return
        self.stored.add(result["content_hash"])
        source = result["record"]["source"]
        self.pending[source].append(result)
        self.pending_rows[source] += result["n_windows"]
        if self.pending_rows[source] >= self.flush_rows:
            self.flush(source)

    def flush(self, source: str) -> None:
        import pandas as pd

        from ser_pipeline.features.store import write_features

        results = self.pending.pop(source, [])
        self.pending_rows.pop(source, None)
        if not results:
            return
        rows = []
        for result in results:
            record = result["record"]
            for window in range(result["n_windows"]):
                rows.append({**record, "group": record["speaker"], "window": window, "content_hash": result["content_hash"],
                             "n_windows": result["n_windows"], "duration_s": result["duration_s"]})
        keys = pd.DataFrame(rows)
        feats = {name: np.concatenate([r["feats"][name] for r in results]) for name in self.spec.families}
        url = write_features(self.store_url, keys, feats, self.spec, skip_hashes=set(), settings=self.settings)
        if url:
            self.summary.files.append(url)
            self.summary.files_written += len(results)
            self.summary.rows_written += len(keys)

    def flush_all(self) -> None:
        for source in list(self.pending):
            self.flush(source)


def featurise(
    items: Iterable[Any],
    store_url: str | None = None,
    spec: FeatureSpec | None = None,
    workers: int = 0,
    progress: bool = True,
    *,
    source_url: str | None = None,
    chunk_size: int = 8,
    flush_rows: int = 256,
    settings: Settings,
) -> ExtractionSummary:
    """Featurise ``items`` into the store at ``store_url`` (else ``settings.feature_store_url``),
    skipping what it already holds; the caller's ``settings`` also open the files and the store.

    ``workers``: processes (0: ``settings.workers``, whose 0 means all cores; 1: in this
    process, no pool). ``source_url``: the folder plain URLs were listed from, so their
    utterance ids are relative paths. Returns the run's :class:`ExtractionSummary`.
    """
    from tqdm.auto import tqdm

    from ser_pipeline.features.store import stored_hashes

    started = time.perf_counter()
    spec = spec or FeatureSpec.from_settings(settings)
    store_url = store_url or settings.feature_store_url
    workers = workers or settings.effective_workers()
    if spec.output == "embeddings":  # the encoder spreads one window over every core itself
        workers = 1
    records = [item_record(item, source_url) for item in items]
    summary = ExtractionSummary(files_seen=len(records))
    stored = stored_hashes(store_url, spec, {r["source"] for r in records}, settings) if records else set()
    writer = _Writer(store_url, spec, stored, summary, flush_rows, settings)
    chunks = [records[i : i + chunk_size] for i in range(0, len(records), chunk_size)]
    skip = frozenset(stored)

    def absorb(results: list[dict[str, Any]]) -> None:
        for result in results:
            if result["status"] == "ok":
                writer.add(result)
            elif result["status"] == "skipped":
                summary.skipped += 1
            else:
                summary.failures.append(Failure(result["path"], result["reason"]))
        bar.update(len(results))

    with tqdm(total=len(records), unit="file", desc="features", disable=not progress) as bar:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                absorb(_featurise_chunk(chunk, spec, skip, settings))
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # no forked copies of fsspec's event-loop threads
            with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context,
                                     initializer=_init_worker, initargs=(skip, settings)) as pool:
                # Keep a bounded number of chunks in flight so results don't pile up in memory.
                queue = iter(chunks)
                in_flight: dict[Any, list[dict[str, Any]]] = {}
                for chunk in queue:
                    in_flight[pool.submit(_featurise_chunk, chunk, spec)] = chunk
                    if len(in_flight) >= 2 * workers:
                        break
                while in_flight:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        chunk = in_flight.pop(future)
                        try:
                            absorb(future.result())
                        except Exception as exc:  # a worker died (e.g. out of memory): its files fail, the run goes on
                            reason = f"worker failed: {type(exc).__name__}: {exc}"
                            absorb([{"status": "failed", "path": r["path"], "reason": reason} for r in chunk])
                        nxt = next(queue, None)
                        if nxt is not None:
                            in_flight[pool.submit(_featurise_chunk, nxt, spec)] = nxt
        writer.flush_all()
    summary.elapsed_s = time.perf_counter() - started
    return summary
