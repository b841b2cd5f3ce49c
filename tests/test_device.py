"""The device plan: precision and batch sizes decided from the facts a backend reports."""

from __future__ import annotations

import pytest

from ser_pipeline.device import Accelerator, current_plan, detect_accelerators, dtype_policy, plan_device

GiB = 2**30


def test_cpu_only_runs_float32_with_the_configured_training_batch():
    plan = plan_device("tensorflow", [])
    assert plan.device == "cpu" and plan.precision == "float32" and not plan.mixed_precision
    assert plan.train_batch(32) == 32 and plan.train_batch(0) == 32
    assert plan.predict_batch_size == 256


@pytest.mark.parametrize("cc, precision", [((7, 0), "mixed_float16"), ((8, 0), "mixed_float16"), ((9, 0), "mixed_float16"),
                                           ((6, 1), "float32"), ((3, 7), "float32"), (None, "float32")])
def test_mixed_precision_only_from_compute_capability_7(cc, precision):
    plan = plan_device("torch", [Accelerator("gpu", cc, 16 * GiB, 15 * GiB)])
    assert plan.device == "gpu" and plan.precision == precision


def test_one_old_gpu_among_new_ones_keeps_float32():
    plan = plan_device("jax", [Accelerator("A100", (8, 0), 80 * GiB, 80 * GiB), Accelerator("P100", (6, 0), 16 * GiB, 16 * GiB)])
    assert plan.precision == "float32"


def test_batch_sizes_grow_with_free_memory_and_stay_powers_of_two_within_bounds():
    small = plan_device("tensorflow", [Accelerator("T4", (7, 5), 16 * GiB, 2 * GiB)])
    large = plan_device("tensorflow", [Accelerator("H100", (9, 0), 80 * GiB, 78 * GiB)])
    for plan in (small, large):
        for size in (plan.train_batch_size, plan.predict_batch_size):
            assert size & (size - 1) == 0
    assert 32 <= small.train_batch_size < large.train_batch_size <= 512
    assert 256 <= small.predict_batch_size < large.predict_batch_size <= 8192
    # 2 GiB free, half of it used, 12 MiB per example in float16: 85 fit -> 64.
    assert small.train_batch_size == 64
    # An explicit training batch wins over the planned one; 0 asks for the plan's.
    assert large.train_batch(16) == 16 and large.train_batch(0) == large.train_batch_size


def test_float32_needs_twice_the_memory_per_example():
    gpu = dict(total_bytes=16 * GiB, free_bytes=8 * GiB)
    fp16 = plan_device("torch", [Accelerator("V100", (7, 0), **gpu)])
    fp32 = plan_device("torch", [Accelerator("P100", (6, 0), **gpu)])
    assert fp16.train_batch_size == 2 * fp32.train_batch_size


def test_the_smallest_free_memory_decides_and_unknown_memory_keeps_defaults():
    mixed = plan_device("tensorflow", [Accelerator("a", (8, 0), 40 * GiB, 39 * GiB), Accelerator("b", (8, 0), 40 * GiB, 3 * GiB)])
    alone = plan_device("tensorflow", [Accelerator("b", (8, 0), 40 * GiB, 3 * GiB)])
    assert mixed.train_batch_size == alone.train_batch_size
    unknown = plan_device("tensorflow", [Accelerator("gpu", (8, 0))])
    assert unknown.train_batch_size is None and unknown.train_batch(0) == 32 and unknown.predict_batch_size == 256
    assert "unknown" in unknown.reason


def _gpus_the_backend_lists(backend: str) -> list[tuple[str, tuple[int, int] | None]]:
    """(name, compute capability) of every GPU, asked of the Keras backend's own library."""
    if backend == "tensorflow":
        import tensorflow as tf

        listed = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            cc = details.get("compute_capability")
            listed.append((details.get("device_name", gpu.name), tuple(cc) if cc else None))
        return listed
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return []
        return [(torch.cuda.get_device_name(i), tuple(torch.cuda.get_device_capability(i)))
                for i in range(torch.cuda.device_count())]
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return [(d.device_kind, tuple(int(x) for x in str(d.compute_capability).split(".")[:2])
                 if getattr(d, "compute_capability", None) else None) for d in gpus]
    return []


def test_the_plan_describes_the_gpus_the_backend_itself_lists():
    """On a CPU host: no GPU, float32. On a GPU host: every GPU the backend lists, by name,
    mixed precision exactly when all of them have compute capability 7.0 or newer."""
    import keras

    from ser_pipeline.device import describe

    backend = keras.backend.backend()
    listed = _gpus_the_backend_lists(backend)
    detected = detect_accelerators()
    assert [(a.name, a.compute_capability) for a in detected] == listed
    plan = current_plan()
    described = describe(plan)
    assert (described["backend"], described["gpus"]) == (backend, [name for name, _ in listed])
    assert described["device"] == ("gpu" if listed else "cpu")
    tensor_cores = bool(listed) and all(cc is not None and cc >= (7, 0) for _, cc in listed)
    assert described["precision"] == ("mixed_float16" if tensor_cores else "float32")
    assert plan.accelerators == tuple(detected)
    if not listed:
        assert plan.train_batch_size is None and plan.predict_batch_size == 256


def test_a_mixed_precision_plan_builds_float16_layers_with_a_float32_softmax_and_the_policy_is_restored():
    import keras
    import numpy as np

    from ser_pipeline.training.networks import build_model, input_shape_for

    before = keras.mixed_precision.global_policy().name
    gpu_plan = plan_device(current_plan().backend, [Accelerator("gpu", (8, 0), 16 * GiB, 16 * GiB)])
    shape = input_shape_for("mfcc")
    with dtype_policy(gpu_plan):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        model = build_model("seed", shape, 8)
    assert keras.mixed_precision.global_policy().name == before
    assert model.layers[0].compute_dtype == "float16" and model.layers[-1].compute_dtype == "float32"
    out = model.predict_on_batch(np.zeros((2, *shape), np.float32))
    assert str(out.dtype) == "float32" and out.shape == (2, 8)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-3)
