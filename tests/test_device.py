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


def test_on_this_machine_the_backend_reports_no_gpu_and_the_policy_is_restored():
    import keras

    assert detect_accelerators() == []
    plan = current_plan()
    assert plan.device == "cpu" and plan.precision == "float32"
    gpu_plan = plan_device(plan.backend, [Accelerator("gpu", (8, 0), 16 * GiB, 16 * GiB)])
    with dtype_policy(gpu_plan):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        from ser_pipeline.training.networks import build_model

        model = build_model("seed", (40, 173, 1), 8)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.layers[0].compute_dtype == "float16" and model.layers[-1].compute_dtype == "float32"
    import numpy as np

    out = model.predict_on_batch(np.zeros((2, 40, 173, 1), np.float32))
    assert str(out.dtype) == "float32" and np.allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-3)
