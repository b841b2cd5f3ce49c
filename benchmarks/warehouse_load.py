"""How much the warehouse loaders' checks cost: load_predictions (idempotent, with quarantine
checks) against a plain bulk INSERT of the same frame, measured in the same run.

    PYTHONPATH=. python benchmarks/warehouse_load.py [--rows 100000]

Prints rows/s for the first load, for re-loading the same batch (nothing inserted), and the
ratio of each to the plain INSERT.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ser_pipeline import warehouse
from ser_pipeline.labels import EMOTIONS
from ser_pipeline.archive.manifest import Participant, Session, Survey
from ser_pipeline.settings import Settings

SETTINGS = Settings()  # a benchmark is an edge: the environment's settings, read once


def _frames(n: int, seed: int = 0) -> tuple[Survey, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sessions = tuple(
        Session(f"b-{i:04d}", "BENCH", f"file:///bench/b-{i:04d}.wav", datetime(2026, 1, 5 + i % 20, 10, tzinfo=timezone.utc),
                "mod", "DE", "Berlin", ("p1", "p2"))
        for i in range(max(1, n // 200))
    )
    survey = Survey("BENCH", "file:///bench", sessions, (Participant("p1"), Participant("p2")))
    ids = [f"{i:032x}" for i in range(n)]
    starts = np.arange(n) % 200 * 3.0
    utts = pd.DataFrame({"utterance_id": ids, "session_id": [sessions[i // 200 % len(sessions)].session_id for i in range(n)],
                         "participant_id": np.where(np.arange(n) % 2, "p1", "p2"), "start_s": starts, "end_s": starts + 2.5,
                         "source_uri": "file:///bench/x.wav", "content_hash": ids, "question": "Q1"})
    proba = rng.dirichlet(np.ones(len(EMOTIONS)), size=n)
    preds = pd.DataFrame({"utterance_id": ids, "model_version": "bench", "label": np.array(EMOTIONS)[proba.argmax(1)],
                          "confidence": proba.max(1)})
    for i, e in enumerate(EMOTIONS):
        preds[f"p_{e}"] = proba[:, i]
    return survey, utts, preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    survey, utts, preds = _frames(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, path = Path(tmp) / "ref.duckdb", Path(tmp) / "wh.duckdb"
        for p in (ref_path, path):
            with warehouse.writing(p, settings=SETTINGS) as con:
                warehouse.load_survey(con, survey, SETTINGS.pseudonym_key)
                warehouse.load_utterances(con, utts, SETTINGS.pseudonym_key)
        with warehouse.writing(ref_path, settings=SETTINGS) as con:
            plain = preds.reindex(columns=list(warehouse.PREDICTION_COLUMNS))
            started = time.perf_counter()
            con.execute(f"INSERT INTO predictions ({', '.join(plain.columns)}) SELECT * FROM plain")
            reference = time.perf_counter() - started
        with warehouse.writing(path, settings=SETTINGS) as con:
            started = time.perf_counter()
            first = warehouse.load_predictions(con, preds)
            load = time.perf_counter() - started
            started = time.perf_counter()
            again = warehouse.load_predictions(con, preds)
            reload = time.perf_counter() - started
    assert first.inserted == args.rows and again.inserted == 0
    n = args.rows
    print(f"rows                      {n:>12,}")
    print(f"plain INSERT (reference)  {n / reference:>12,.0f} rows/s")
    print(f"load_predictions          {n / load:>12,.0f} rows/s   ratio to reference {reference / load:.2f}")
    print(f"re-load (all present)     {n / reload:>12,.0f} rows/s   ratio to reference {reference / reload:.2f}")


if __name__ == "__main__":
    main()
