"""Scale-out: the same nightly flow on a Dask cluster of 1 worker, then of 2 workers.

Starts a local Dask cluster outside the timing (workers warmed up: TensorFlow/Keras, Great
Expectations and librosa imported), points the flow at it by address, exactly as a
deployment points it at a remote cluster with ``SER_DASK_ADDRESS``, and runs
``label-new-audio`` on a generated archive into a fresh feature store and warehouse, under
Prefect's test harness (a temporary local API server). Prints wall seconds, seconds of audio
per wall second, and the ratio 2 workers / 1 worker. Both runs must load the same rows.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/scaleout.py [--hours 0.5] [--batch-size 90]

On a 2-core machine shared with other jobs the ratio is bounded by what the other jobs
leave free; on a dedicated machine it tends to the number of workers (the flow's loads and
planning are the serial part).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nightly import make_archive, make_champion  # noqa: E402


def _warm() -> bool:
    import great_expectations  # noqa: F401
    import keras  # noqa: F401
    import librosa  # noqa: F401

    return True


def run_flow(n_workers: int, archive_url: str, registry_url: str, work: Path, batch_size: int) -> tuple[float, dict, list]:
    import duckdb
    from distributed import Client, LocalCluster
    from prefect_dask import DaskTaskRunner

    from flows.nightly import label_new_audio

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    from ser_pipeline.settings import get_settings

    settings = get_settings().model_copy(update={"feature_store_url": (work / "features").as_uri()})
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(_warm)
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        start = time.perf_counter()
        state = label_new_audio.with_options(task_runner=runner)(archive_url, str(work / "wh.duckdb"), batch_size=batch_size,
                                                                 settings=settings, return_state=True)
        wall = time.perf_counter() - start
    if not state.is_completed():
        raise SystemExit(f"flow run on {n_workers} worker(s) did not complete: {state.message}")
    con = duckdb.connect(str(work / "wh.duckdb"), read_only=True)
    rows = con.execute("SELECT utterance_id, label, round(confidence, 5) FROM predictions ORDER BY utterance_id").fetchall()
    con.close()
    return wall, state.result(), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=90, help="utterances per batch (2 sessions): several batches per worker")
    parser.add_argument("--architecture", default="seed")
    parser.add_argument("--input", default="mfcc", help="the champion's input (the seed CNN's mfcc by default)")
    parser.add_argument("--encoder", default="whisper-base", help="the encoder of --input encoder")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ser-bench-nightly")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    archive_url, audio_s = make_archive(args.workdir, args.hours, 44_100, "mixed", args.seed)
    registry_url = make_champion(args.workdir, args.architecture, args.input, "global" if args.input == "mfcc" else "speaker",
                                 epochs=12, seed=args.seed, encoder=args.encoder)
    os.environ["SER_REGISTRY_URL"] = registry_url
    os.environ.setdefault("SER_WORKERS", "1")  # one feature thread per Dask worker: the workers are the parallelism

    from prefect.testing.utilities import prefect_test_harness

    results = {}
    with prefect_test_harness(server_startup_timeout=120):
        for n in (1, 2):
            results[n] = run_flow(n, archive_url, registry_url, args.workdir / f"scaleout-{n}", args.batch_size)
    (one, summary, rows1), (two, _, rows2) = results[1], results[2]
    print(f"archive: {audio_s / 3600:.2f} h, {summary['predictions_loaded']} utterances in {summary['batches']} batches; "
          f"{os.cpu_count()} cores, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'dask workers':<14}{'seconds':>9}{'x real time':>13}")
    for n, (wall, _, _) in results.items():
        print(f"{n:<14}{wall:>9.1f}{audio_s / wall:>13.0f}")
    print(f"2 workers / 1 worker: {one / two:.2f}x; same warehouse rows: {'yes' if rows1 == rows2 else 'NO'}")
    return 0 if rows1 == rows2 else 1


if __name__ == "__main__":
    sys.exit(main())
