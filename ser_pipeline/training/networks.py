"""The emotion classifier networks (Keras 3, backend-agnostic: TensorFlow, JAX or PyTorch).

Only ``keras`` layers and ``keras.ops`` are used, so ``KERAS_BACKEND=jax`` or ``torch`` runs
the same code. Keras is imported inside the builders to keep ``import ser_pipeline.training.networks``
cheap.

Inputs are feature "images" ``(rows, columns, 1)`` made by the input kind's FeatureSpec
(:func:`feature_spec_for`): ``"mfcc"`` (the seed's, 40 rows x 173 frames), ``"stacked"``
(MFCC 40 + chroma 12 + mel 128 + spectral contrast 7 = 187 rows x 173 frames) and
``"functionals"`` (one column of 807 statistics over the speech frames; ``functionals.py``).

Architectures:

- ``"seed"``: the seed project's CNN, layer for layer (the reference).
- ``"pooled"``: per-row mean/std/min/max statistics over time feeding a small, strongly
  regularised dense network. Emotion in acted speech is mostly global (pitch level and
  range, energy, spectral tilt); pooling removes the timing that a 2-D CNN on 960
  utterances overfits to, which is what breaks speaker independence.
- ``"mlp"``: for ``"functionals"``: input dropout, Dense 256 ReLU (L2), dropout, softmax.
  The statistics are computed over speech frames only, outside the network, so the noise
  floor and the padding do not move them (the 2026-12-07 recipe; docs/MODEL.md).
- ``"linear"``: for ``"encoder"`` (a frozen Whisper encoder's pooled embeddings,
  ``features/encoder.py``): dropout and a softmax layer with L2, i.e. a logistic regression
  (the recommended recipe; docs/MODEL.md). ``"mlp"`` runs on embeddings too.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal

INPUT_FAMILIES: dict[str, tuple[str, ...]] = {
    "mfcc": ("mfcc",),
    "stacked": ("mfcc", "chroma", "mel", "contrast"),
    "functionals": ("functionals",),
    "encoder": ("embedding",),
}
ARCHITECTURES = ("seed", "pooled", "mlp", "linear")

InputKind = Literal["mfcc", "stacked", "functionals", "encoder"]


def feature_spec_for(input_kind: str, spec: Any = None) -> Any:
    """The FeatureSpec an input kind is made with: ``spec`` (default ``FeatureSpec()``) with
    ``output`` set to ``"functionals"`` or ``"frames"``. The ``"encoder"`` kind's spec names
    its encoder (``encoder.encoder_spec``) and is returned as given."""
    from ser_pipeline.features.spec import FeatureSpec

    if input_kind not in INPUT_FAMILIES:
        raise ValueError(f"unknown model input {input_kind!r}; choose one of {sorted(INPUT_FAMILIES)}")
    if input_kind == "encoder":
        if spec is None or spec.output != "embeddings":
            raise ValueError("the encoder input is made with an embeddings spec: features.encoder.encoder_spec(settings)")
        return spec
    return replace(spec or FeatureSpec(), output="functionals" if input_kind == "functionals" else "frames")


def input_shape_for(input_kind: str, spec: Any = None, frames: int | None = None) -> tuple[int, int, int]:
    """``(rows, columns, 1)`` of an input kind, derived from its FeatureSpec; ``frames``
    overrides the columns (tests build small models)."""
    spec = feature_spec_for(input_kind, spec)
    rows = sum(spec.families[f] for f in INPUT_FAMILIES[input_kind])
    return (rows, frames or spec.frames, 1)


def build_seed_cnn(input_shape: tuple[int, int, int], n_classes: int) -> Any:
    """The seed's CNN exactly: two conv blocks, then Dense 256/128 and a softmax."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Conv2D(128, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.5),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(n_classes, activation="softmax", dtype="float32"),  # float32 under mixed precision too
        ],
        name="seed_cnn",
    )


@lru_cache(maxsize=1)
def _time_statistics_class() -> type:
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="ser_pipeline")
    class TimeStatistics(keras.layers.Layer):
        """``(batch, rows, frames, 1)`` -> ``(batch, 4 * rows)``: mean, std, max, min over frames."""

        def call(self, inputs):
            t = ops.squeeze(inputs, axis=-1)
            return ops.concatenate(
                [ops.mean(t, axis=2), ops.std(t, axis=2), ops.max(t, axis=2), ops.min(t, axis=2)], axis=1
            )

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 4 * input_shape[1])

    return TimeStatistics


def custom_objects() -> dict[str, type]:
    """The custom layers a saved model may hold; pass to ``keras.saving.load_model``."""
    cls = _time_statistics_class()
    return {"TimeStatistics": cls, "ser_pipeline>TimeStatistics": cls}


def build_pooled_mlp(input_shape: tuple[int, int, int], n_classes: int, dropout: float = 0.5) -> Any:
    """Statistics pooled over time (mean, std, max, min per row) -> Dense 128 -> softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = _time_statistics_class()(name="time_statistics")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(128, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3))(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(x)  # float32 under mixed precision too
    return keras.Model(inputs, outputs, name="pooled_mlp")


def build_functional_mlp(input_shape: tuple[int, int, int], n_classes: int, width: int = 256) -> Any:
    """Functionals ``(rows, 1, 1)`` -> dropout 0.2 -> Dense ``width`` ReLU (L2 1e-3) -> dropout 0.5 -> softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(width, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-3))(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32")(x)  # float32 under mixed precision too
    return keras.Model(inputs, outputs, name="functional_mlp")


def build_linear(input_shape: tuple[int, int, int], n_classes: int, l2: float = 0.02) -> Any:
    """Embeddings ``(rows, 1, 1)`` -> dropout 0.1 -> softmax (L2 ``l2``): a multinomial logistic
    regression. A frozen encoder already made the features; a wider head overfits sixteen voices.
    ``l2`` 0.02 is scikit-learn's ``C`` 0.01 on ~2 000 training rows, the best of 0.005-0.2 in
    4-fold CV (docs/MODEL.md)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32",
                           kernel_regularizer=keras.regularizers.l2(l2))(x)
    return keras.Model(inputs, outputs, name="linear")


def build_model(architecture: str, input_shape: tuple[int, int, int], n_classes: int) -> Any:
    """An uncompiled Keras model of the named architecture (see the module docstring)."""
    if architecture == "linear":
        return build_linear(input_shape, n_classes)
    if architecture == "seed":
        return build_seed_cnn(input_shape, n_classes)
    if architecture == "pooled":
        return build_pooled_mlp(input_shape, n_classes)
    if architecture == "mlp":
        return build_functional_mlp(input_shape, n_classes)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
