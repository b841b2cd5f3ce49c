"""Threads against processes: what the default runner of a direct call costs.

Runs ``label-new-audio`` as a caller holding settings does (``flows.nightly.nightly_flow``),
on a local Dask cluster of threads in this process (``SER_DASK_PROCESSES=false``: the default
of a flow called from Python) and of worker processes (``SER_DASK_PROCESSES=true``: the
deployments'), on the same generated archive, each run into a fresh feature store and
warehouse, under Prefect's test harness. Each run pays its cluster's start-up (worker
processes spawn, import TensorFlow, GX and librosa, and load the model), as every flow run
does. Rounds alternate the order; prints each run's wall seconds, the best of each runner in
seconds of audio per wall second, and the ratio threads / processes. Both runners must load
the same rows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/runners.py [--hours 1] [--rounds 2] [--batch-size N]

The archive and champion are those of ``benchmarks/nightly.py`` (cached under ``--workdir``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nightly import _load_average, make_archive, make_champion, warm_up  # noqa: E402

RUNNERS = {"threads": False, "processes": True}  # name -> settings.dask_processes


def run_flow(processes: bool, archive_url: str, registry_url: str, encoder: str, work: Path,
             batch_size: int | None) -> tuple[float, list]:
    """Wall seconds of one flow run on a fresh store and warehouse, and the rows it loaded."""
    import duckdb

    from flows.nightly import nightly_flow
    from ser_pipeline.settings import get_settings

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = get_settings().model_copy(update={
        "archive_url": archive_url, "registry_url": registry_url, "feature_store_url": (work / "features").as_uri(),
        "warehouse_path": work / "wh.duckdb", "encoder": encoder, "dask_processes": processes,
        **({"batch_size": batch_size} if batch_size else {}),
    })
    start = time.perf_counter()
    state = nightly_flow(settings)(settings=settings, return_state=True)
    wall = time.perf_counter() - start
    if not state.is_completed():
        raise SystemExit(f"flow run with dask_processes={processes} did not complete: {state.message}")
    con = duckdb.connect(str(work / "wh.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT utterance_id, label FROM predictions ORDER BY utterance_id").fetchall()
    finally:
        con.close()
    return wall, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="at least this much audio in the archive")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each runner, alternating which goes first")
    parser.add_argument("--batch-size", type=int, default=None, help="utterances per batch (default: SER_BATCH_SIZE)")
    from ser_pipeline.settings import Settings
    from ser_pipeline.training.fit import RECIPES, TrainConfig

    recipe = TrainConfig()
    parser.add_argument("--input", default=recipe.input_kind, help="the champion's input: encoder, functionals, stacked or mfcc")
    parser.add_argument("--architecture", default=None, help="the champion's architecture (default: the input's recipe)")
    parser.add_argument("--normalization", default=recipe.normalization, help="the champion's normalisation")
    parser.add_argument("--encoder", default=Settings().encoder, help="the encoder of --input encoder")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ser-bench-nightly")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    args.architecture = args.architecture or RECIPES[args.input].get("architecture", recipe.architecture)

    args.workdir.mkdir(parents=True, exist_ok=True)
    archive_url, audio_s = make_archive(args.workdir, args.hours, 44_100, "mixed", args.seed)
    registry_url = make_champion(args.workdir, args.architecture, args.input, args.normalization, epochs=args.epochs,
                                 seed=args.seed, encoder=args.encoder)
    warm_up()  # this process's imports are paid once, before either runner; worker processes pay theirs

    import flows  # noqa: F401 - telemetry off and libraries quiet, as for any caller, before Prefect starts
    from prefect.testing.utilities import prefect_test_harness

    load_before = _load_average()
    walls: dict[str, list[float]] = {name: [] for name in RUNNERS}
    rows: dict[str, list] = {}
    with prefect_test_harness(server_startup_timeout=120):
        for round_ in range(args.rounds):
            order = list(RUNNERS) if round_ % 2 == 0 else list(reversed(RUNNERS))
            for name in order:
                wall, rows[name] = run_flow(RUNNERS[name], archive_url, registry_url, args.encoder,
                                            args.workdir / f"runners-{name}", args.batch_size)
                walls[name].append(wall)
                print(f"round {round_ + 1}: {name:<10}{wall:>8.1f} s", flush=True)
    best = {name: min(w) for name, w in walls.items()}
    print(f"\narchive: {audio_s / 3600:.2f} h, {len(rows['threads'])} utterances; champion: "
          f"{args.architecture}/{args.input}/{args.normalization}; {os.cpu_count()} cores, load average "
          f"{load_before} -> {_load_average()}")
    print(f"{'runner':<12}{'best s':>8}{'x real time':>13}   all runs (s)")
    for name, wall in best.items():
        print(f"{name:<12}{wall:>8.1f}{audio_s / wall:>13.0f}   {', '.join(f'{w:.1f}' for w in walls[name])}")
    same = rows["threads"] == rows["processes"]
    print(f"threads / processes: {best['processes'] / best['threads']:.2f}x the rate; "
          f"same warehouse rows: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
