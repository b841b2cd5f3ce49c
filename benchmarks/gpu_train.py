"""The seed CNN's training epoch time and inference throughput on whichever device is present.

Keras 3 on the backend ``KERAS_BACKEND`` names (TensorFlow by default; ``torch`` or ``jax``
work the same). The device plan (``ser_pipeline.device``) decides GPU or CPU, mixed
precision (GPUs of compute capability >= 7.0) and batch sizes (from free GPU memory; on a
CPU the training batch is ``--batch-size``). Inputs are random MFCC-shaped windows
(40 x 173): the time depends on shapes, not values. The first epoch (compilation) and a
warm-up prediction are not timed.

    KERAS_BACKEND=torch python benchmarks/gpu_train.py            # on the GPU machine
    PYTHONPATH=$PWD /work/main/.venv/bin/python benchmarks/gpu_train.py   # here, CPU

Prints one JSON object: the device plan, seconds per epoch over ``--examples`` windows, and
windows per second at inference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2048, help="training windows per epoch (RAVDESS+TESS-sized: ~2-4k)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one untimed warm-up epoch)")
    parser.add_argument("--batch-size", type=int, default=0, help="training batch; 0: from the device plan (32 on a CPU)")
    parser.add_argument("--predict-windows", type=int, default=8192)
    args = parser.parse_args()

    import keras
    import numpy as np

    from ser_pipeline.device import current_plan, describe, dtype_policy
    from ser_pipeline.inference.predict import predict_batches
    from ser_pipeline.training.networks import build_seed_cnn

    plan = current_plan()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.examples, 40, 173, 1)).astype(np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 8, size=args.examples), 8)
    with dtype_policy(plan):
        model = build_seed_cnn((40, 173, 1), 8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    batch = plan.train_batch(args.batch_size)

    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # compile / autotune
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=args.epochs, verbose=0)
    epoch_s = (time.perf_counter() - start) / args.epochs

    xp = rng.normal(size=(args.predict_windows, 40, 173, 1)).astype(np.float32)
    predict_batches(model, xp[: plan.predict_batch_size], plan.predict_batch_size)
    start = time.perf_counter()
    predict_batches(model, xp, plan.predict_batch_size)
    predict_s = time.perf_counter() - start

    print(json.dumps({
        "plan": describe(plan), "keras": keras.__version__, "cpu_count": os.cpu_count(),
        "train": {"examples": args.examples, "batch_size": batch, "seconds_per_epoch": round(epoch_s, 2),
                  "examples_per_s": round(args.examples / epoch_s, 1)},
        "predict": {"windows": args.predict_windows, "batch_size": plan.predict_batch_size, "seconds": round(predict_s, 2),
                    "windows_per_s": round(args.predict_windows / predict_s, 1)},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
