"""Which device training and inference run on, in what precision, with what batch sizes.

Keras 3 places work on a GPU by itself when its backend sees one; what it does not decide is
the precision and how many examples fit in a batch. :func:`plan_device` makes that decision
from plain facts (the backend, its accelerators, their free memory), so it is tested without
a GPU; :func:`detect_accelerators` gathers those facts through the active backend
(TensorFlow ``tf.config``, ``torch.cuda``, ``jax.devices()``), and :func:`current_plan`
combines the two.

* **Mixed precision** (``mixed_float16``) only on GPUs of compute capability 7.0 or newer
  (tensor cores: Volta, Turing, Ampere, Hopper); older GPUs and CPUs run float16 slower
  than float32, or without hardware support. The models keep their softmax output in
  float32 (``model.py``), and Keras wraps the optimiser in loss scaling when it compiles a
  model under ``mixed_float16``.
* **Batch sizes** from free memory: the largest power of two whose estimated footprint
  (``bytes_per_example``, halved in float16) fits in ``memory_fraction`` of the smallest
  free memory of the GPUs, within fixed bounds. On a CPU the inference batch is a fixed
  256 windows and the training batch is the configuration's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

MIN_MIXED_PRECISION_CC = (7, 0)

# Estimated device memory per example of the seed CNN on MFCC input (40 x 173), float32:
# activations of the two conv blocks kept for the backward pass, gradients, workspace.
TRAIN_BYTES_PER_EXAMPLE = 24 * 2**20
PREDICT_BYTES_PER_EXAMPLE = 6 * 2**20
CPU_PREDICT_BATCH = 256
TRAIN_BATCH_BOUNDS = (32, 512)
PREDICT_BATCH_BOUNDS = (256, 8192)


@dataclass(frozen=True)
class Accelerator:
    """One GPU as the backend reports it."""

    name: str
    compute_capability: tuple[int, int] | None = None
    total_bytes: int | None = None
    free_bytes: int | None = None


@dataclass(frozen=True)
class DevicePlan:
    """Where and how to run: ``device`` is ``"cpu"`` or ``"gpu"`` (all visible GPUs)."""

    backend: str
    device: str
    accelerators: tuple[Accelerator, ...]
    precision: str  # Keras dtype policy: "float32" or "mixed_float16"
    train_batch_size: int | None  # None: the training configuration's
    predict_batch_size: int
    reason: str

    @property
    def mixed_precision(self) -> bool:
        return self.precision == "mixed_float16"

    def train_batch(self, configured: int) -> int:
        """The training batch: ``configured`` unless it is 0 ("auto") and a GPU planned one."""
        if configured > 0:
            return configured
        return self.train_batch_size or 32


def _power_of_two_batch(free_bytes: int, per_example: float, fraction: float, bounds: tuple[int, int]) -> int:
    fits = int(free_bytes * fraction / per_example)
    size = bounds[0]
    while size * 2 <= min(fits, bounds[1]):
        size *= 2
    return size


def plan_device(
    backend: str,
    accelerators: tuple[Accelerator, ...] | list[Accelerator],
    *,
    train_bytes_per_example: float = TRAIN_BYTES_PER_EXAMPLE,
    predict_bytes_per_example: float = PREDICT_BYTES_PER_EXAMPLE,
    memory_fraction: float = 0.5,
) -> DevicePlan:
    """The plan for ``backend`` given its ``accelerators`` (empty: CPU only). Pure: no device
    is touched, so every case is testable here."""
    accelerators = tuple(accelerators)
    if not accelerators:
        return DevicePlan(backend, "cpu", (), "float32", None, CPU_PREDICT_BATCH, "no GPU visible to the backend")
    capabilities = [a.compute_capability for a in accelerators]
    mixed = all(cc is not None and tuple(cc) >= MIN_MIXED_PRECISION_CC for cc in capabilities)
    if mixed:
        why = f"compute capability {min(capabilities)} >= 7.0: mixed_float16"
    else:
        known = [cc for cc in capabilities if cc is not None]
        why = (f"compute capability {min(known)} < 7.0: float32" if known and min(known) < MIN_MIXED_PRECISION_CC
               else "compute capability unknown: float32")
    free = [a.free_bytes if a.free_bytes is not None else a.total_bytes for a in accelerators]
    scale = 0.5 if mixed else 1.0
    if any(f is None for f in free):
        train_batch, predict_batch = None, PREDICT_BATCH_BOUNDS[0]
        why += "; free memory unknown: default batch sizes"
    else:
        smallest = min(f for f in free if f is not None)
        train_batch = _power_of_two_batch(smallest, train_bytes_per_example * scale, memory_fraction, TRAIN_BATCH_BOUNDS)
        predict_batch = _power_of_two_batch(smallest, predict_bytes_per_example * scale, memory_fraction, PREDICT_BATCH_BOUNDS)
        why += f"; {smallest / 2**30:.1f} GiB free: batches {train_batch} (train) / {predict_batch} (predict)"
    return DevicePlan(backend, "gpu", accelerators, "mixed_float16" if mixed else "float32", train_batch, predict_batch, why)


def plan_encoder(cuda_devices: int) -> tuple[str, str]:
    """``(device, compute_type)`` of the speech encoder (CTranslate2, which finds CUDA itself,
    whatever the Keras backend): float16 on a GPU, int8 on a CPU (weights quantised on load:
    about twice float32's speed on two cores, embeddings within rounding of float32's)."""
    return ("cuda", "float16") if cuda_devices > 0 else ("cpu", "int8")


# -- facts from the active backend ------------------------------------------------------------


def _nvidia_smi_memory() -> list[tuple[int, int]]:
    """(total, free) bytes per GPU from nvidia-smi, or [] where it is not installed."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.strip().splitlines():
        total, free = (int(float(v)) * 2**20 for v in line.split(","))
        rows.append((total, free))
    return rows


def _tensorflow_accelerators() -> list[Accelerator]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    memory = _nvidia_smi_memory()
    found = []
    for i, gpu in enumerate(gpus):
        details = tf.config.experimental.get_device_details(gpu)
        total, free = memory[i] if i < len(memory) else (None, None)
        found.append(Accelerator(details.get("device_name", gpu.name), details.get("compute_capability"), total, free))
    return found


def _torch_accelerators() -> list[Accelerator]:
    import torch

    if not torch.cuda.is_available():
        return []
    found = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        found.append(Accelerator(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)), int(total), int(free)))
    return found


def _jax_accelerators() -> list[Accelerator]:
    import jax

    found = []
    for device in jax.devices():
        if device.platform != "gpu":
            continue
        cc = getattr(device, "compute_capability", None)
        capability = tuple(int(x) for x in str(cc).split(".")[:2]) if cc else None
        stats = device.memory_stats() or {}
        total = stats.get("bytes_limit")
        free = total - stats.get("bytes_in_use", 0) if total is not None else None
        found.append(Accelerator(getattr(device, "device_kind", str(device)), capability, total, free))
    return found


def detect_accelerators(backend: str | None = None) -> list[Accelerator]:
    """The GPUs the Keras backend (``backend`` or the active one) can use; [] on CPU."""
    backend = backend or active_backend()
    detect = {"tensorflow": _tensorflow_accelerators, "torch": _torch_accelerators, "jax": _jax_accelerators}.get(backend)
    if detect is None:
        return []
    try:
        return detect()
    except ImportError:
        return []


def active_backend() -> str:
    """The Keras backend in use (``KERAS_BACKEND``, else Keras' configured one), without
    importing Keras when the environment says which."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    import keras

    return keras.backend.backend()


@lru_cache(maxsize=1)
def current_plan() -> DevicePlan:
    """The plan for this process's backend and GPUs (detected once per process)."""
    backend = active_backend()
    return plan_device(backend, detect_accelerators(backend))


@contextmanager
def dtype_policy(plan: DevicePlan) -> Iterator[None]:
    """Build models inside this block to get the plan's precision; the global Keras policy is
    restored afterwards (a layer keeps the policy it was built with)."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(plan.precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def describe(plan: DevicePlan) -> dict[str, Any]:
    return {
        "backend": plan.backend, "device": plan.device, "precision": plan.precision,
        "gpus": [a.name for a in plan.accelerators], "train_batch_size": plan.train_batch_size,
        "predict_batch_size": plan.predict_batch_size, "reason": plan.reason,
    }
