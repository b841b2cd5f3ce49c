"""Feature extraction speed: our one-STFT batched extractor against the naive librosa recipe.

Both run on the same real RAVDESS clips in the same process, decoded beforehand (decoding is
not timed), one 173-frame window per clip. Outputs are checked equal (max|a-b| / max|b| per
family < 1e-4) in the same run. The single-core figure pins BLAS/OpenMP to one thread
before numpy is imported; ``--all-cores`` adds a run over a process pool for both.

    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/features.py --clips 200
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ser_pipeline.audio.decode import load_audio  # noqa: E402
from ser_pipeline.features.spec import FeatureSpec, clip_windows
from ser_pipeline.features.frames import extract_features, extract_features_naive

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TOLERANCE = 1e-4


def load_clips(data: Path, n: int, spec: FeatureSpec) -> np.ndarray:
    files = sorted((data / "ravdess-dev").glob("Actor_*/*.flac"))
    if not files:
        sys.exit(f"no RAVDESS files under {data / 'ravdess-dev'} (pass --data)")
    step = max(1, len(files) // n)
    chosen = files[::step][:n]
    return np.stack([clip_windows(load_audio(f, spec.sample_rate).samples, spec)[0] for f in chosen])


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _naive_chunk(clips: np.ndarray) -> int:
    return len(extract_features_naive(clips)["mfcc"])


def _ours_chunk(clips: np.ndarray) -> int:
    return len(extract_features(clips)["mfcc"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="best of N (the naive recipe gets N-1, at least 1)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--all-cores", action="store_true", help="also time both over a process pool on every core")
    args = parser.parse_args()

    spec = FeatureSpec()
    clips = load_clips(args.data, args.clips, spec)
    n = len(clips)
    extract_features(clips[:4], spec)  # imports and filter banks outside the timing
    extract_features_naive(clips[:2], spec)

    naive_s, naive = best_time(lambda: extract_features_naive(clips, spec), max(1, args.repeats - 1))
    ours_s, ours = best_time(lambda: extract_features(clips, spec), args.repeats)

    errors = {f: float(np.abs(ours[f].astype(np.float64) - naive[f]).max() / np.abs(naive[f]).max()) for f in spec.families}
    equal = all(e < TOLERANCE for e in errors.values())

    rows = [("naive (4 librosa calls/clip)", "1", naive_s), ("ours (1 STFT, batched)", "1", ours_s)]
    if args.all_cores:
        cores = os.cpu_count() or 1
        with ProcessPoolExecutor(cores) as pool:  # warm the workers (imports) before timing
            list(pool.map(_ours_chunk, [clips[:2]] * cores))
            list(pool.map(_naive_chunk, [clips[:2]] * cores))
            for label, fn in (("naive", _naive_chunk), ("ours", _ours_chunk)):
                start = time.perf_counter()
                list(pool.map(fn, np.array_split(clips, cores * 4)))
                rows.append((f"{label}, process pool", str(cores), time.perf_counter() - start))

    print(f"{n} RAVDESS clips x 173 frames (~4 s each), spec {spec.hash}, families {spec.families}")
    print(f"{'extractor':<32}{'cores':>6}{'seconds':>10}{'clips/s':>10}{'vs naive':>10}")
    for label, cores, seconds in rows:
        reference = naive_s if cores == "1" else rows[2][2]
        print(f"{label:<32}{cores:>6}{seconds:>10.2f}{n / seconds:>10.1f}{reference / seconds:>9.1f}x")
    print("equal within 1e-4 (max|ours-naive| / max|naive|): "
          + ", ".join(f"{f} {e:.1e}" for f, e in errors.items()) + ("  OK" if equal else "  MISMATCH"))
    speedup = naive_s / ours_s
    print(f"single-core speed-up: {speedup:.1f}x (goal >= 5x) {'MET' if speedup >= 5 else 'NOT MET'}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
