"""Load: a nightly run over a generated archive of >= 2 000 utterances in 50 sessions, and the
same at half the size; wall time and peak resident memory of each.

Each run happens in its own fresh child process (so its peak RSS is its own), on its own
archive, warehouse and feature store, with the same small champion model. The claim to read:
peak memory is bounded by the batch size, not by the archive's size, so the full archive's
peak is close to the half archive's (ratio ~1) while the time roughly doubles.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/nightly_load.py [--sessions 50] [--utterances 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from ser_pipeline.runs.nightly import run_nightly
archive, warehouse, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
report = run_nightly(archive, warehouse, batch_size=batch_size)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "summary": report.summary(), "stage_seconds": report.stage_seconds}))
"""


def _generate(url: str, sessions: int, utterances: int, seed: int) -> int:
    from ser_pipeline import synthetic as synth

    surveys = 5
    truth = synth.generate_archive(url, n_surveys=surveys, sessions_per_survey=sessions // surveys, participants_per_session=4,
                                   utterances_per_session=utterances, sidecar="mixed", seed=seed)
    return len(truth)


def _run(workdir: Path, name: str, archive_url: str, registry_url: str, batch_size: int) -> dict:
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SER_REGISTRY_URL": registry_url,
           "SER_FEATURE_STORE_URL": (workdir / f"features-{name}").as_uri(), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", CHILD, archive_url, str(workdir / f"{name}.duckdb"), str(batch_size)],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{name} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50, help="sessions in the full archive (half has half)")
    parser.add_argument("--utterances", type=int, default=40, help="utterances per session")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from ser_pipeline.settings import Settings
    from support.tiny_model import train_tiny_champion

    workdir = args.out or Path(tempfile.mkdtemp(prefix="nightly-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    registry_url = (workdir / "registry").as_uri()
    train_tiny_champion((workdir / "corpus").as_uri(), registry_url, Settings())
    rows = []
    for name, sessions in (("half", args.sessions // 2), ("full", args.sessions)):
        archive_url = (workdir / f"archive-{name}").as_uri()
        start = time.perf_counter()
        n = _generate(archive_url, sessions, args.utterances, seed=11)
        generated_s = time.perf_counter() - start
        result = _run(workdir, name, archive_url, registry_url, args.batch_size)
        s = result["summary"]
        rows.append((name, sessions, n, s["predictions_loaded"], s["status"], result["seconds"], result["peak_rss_mb"]))
        print(f"{name}: {sessions} sessions, {n} turns generated in {generated_s:.0f} s; run {s['status']}, "
              f"{s['predictions_loaded']} predictions in {result['seconds']:.0f} s, peak RSS {result['peak_rss_mb']:.0f} MB; "
              f"stages {json.dumps({k: round(v, 1) for k, v in result['stage_seconds'].items()})}", flush=True)
    print("\n| archive | sessions | utterances labelled | status | wall time (s) | peak RSS (MB) |")
    print("|---|---:|---:|---|---:|---:|")
    for name, sessions, _n, loaded, status, seconds, rss in rows:
        print(f"| {name} | {sessions} | {loaded} | {status} | {seconds:.0f} | {rss:.0f} |")
    half, full = rows
    print(f"\nfull / half: utterances x{full[3] / max(half[3], 1):.2f}, time x{full[5] / half[5]:.2f}, "
          f"peak RSS x{full[6] / half[6]:.2f}")


if __name__ == "__main__":
    main()
