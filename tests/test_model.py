import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ser_pipeline.features.spec import FeatureSpec
from ser_pipeline.training.networks import build_model, build_seed_cnn, input_shape_for

ROOT = Path(__file__).resolve().parents[1]


def test_input_shapes_are_the_feature_specs_rows_and_frames():
    spec = FeatureSpec()
    contrast_rows = spec.n_bands + 1  # the octave bands plus the band below contrast_fmin
    assert input_shape_for("mfcc") == (spec.n_mfcc, spec.n_frames, 1)
    assert input_shape_for("stacked") == (spec.n_mfcc + spec.n_chroma + spec.n_mels + contrast_rows, spec.n_frames, 1)
    assert input_shape_for("stacked") == (sum(r for r, _ in spec.shapes.values()), spec.frames, 1)
    functionals = FeatureSpec(output="functionals")
    assert input_shape_for("functionals") == (functionals.families["functionals"], 1, 1)
    # another spec gives another shape; ``frames`` overrides the columns only
    small = FeatureSpec(n_mfcc=20, n_mels=64, n_frames=50)
    assert input_shape_for("mfcc", small) == (20, 50, 1)
    assert input_shape_for("stacked", small) == (20 + small.n_chroma + 64 + contrast_rows, 50, 1)
    assert input_shape_for("mfcc", frames=32) == (spec.n_mfcc, 32, 1)
    with pytest.raises(ValueError, match="unknown model input"):
        input_shape_for("wav2vec")


def test_seed_cnn_is_the_seed_architecture():
    model = build_seed_cnn(input_shape_for("mfcc"), 8)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Dropout", "Conv2D", "MaxPooling2D", "Dropout",
                     "Flatten", "Dense", "Dense", "Dense"]
    conv1, _, drop1, conv2, _, drop2, _, d1, d2, out = model.layers
    assert (conv1.filters, conv1.kernel_size, conv2.filters, conv2.kernel_size) == (64, (3, 3), 128, (3, 3))
    assert (drop1.rate, drop2.rate) == (0.25, 0.5)
    assert (d1.units, d2.units, out.units) == (256, 128, 8)
    assert out.activation.__name__ == "softmax"
    assert model.input_shape == (None, *input_shape_for("mfcc")) and model.output_shape == (None, 8)


def test_stacked_input_and_pooled_architecture_build():
    stacked, mfcc = input_shape_for("stacked", frames=32), input_shape_for("mfcc", frames=32)
    seed = build_model("seed", stacked, 7)
    pooled = build_model("pooled", mfcc, 4)
    assert (seed.input_shape, seed.output_shape) == ((None, *stacked), (None, 7))
    assert (pooled.input_shape, pooled.output_shape) == ((None, *mfcc), (None, 4))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("transformer", mfcc, 4)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_models_train_and_predict_on_another_keras_backend(backend):
    pytest.importorskip(backend, reason=f"{backend} is not installed (torch and jax are in the test extra)")
    script = textwrap.dedent(
        """
        import json, sys
        import keras, numpy as np
        from ser_pipeline.training.networks import build_model, input_shape_for
        rng = np.random.default_rng(0)
        out = {"backend": keras.backend.backend()}
        for arch in ("seed", "pooled"):
            shape = input_shape_for("mfcc", frames=24)
            model = build_model(arch, shape, 3)
            model.compile(optimizer="adam", loss="categorical_crossentropy")
            x = rng.normal(size=(12, *shape)).astype("float32")
            y = keras.utils.to_categorical(rng.integers(0, 3, 12), 3)
            model.fit(x, y, epochs=1, batch_size=4, verbose=0)
            out[arch] = np.asarray(model.predict(x, verbose=0)).sum(axis=1).tolist()
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    for arch in ("seed", "pooled"):
        assert result[arch] == pytest.approx([1.0] * 12, abs=1e-4)
