"""The emotion classifier networks (Keras 3, backend-agnostic: TensorFlow, JAX or PyTorch).

Only ``keras`` layers and ``keras.ops`` are used, so ``KERAS_BACKEND=jax`` or ``torch`` runs
the same code. Keras is imported inside the builders to keep ``import ser_pipeline.model``
cheap.

Inputs are feature "images" ``(rows, frames, 1)``: ``rows`` is 40 for ``"mfcc"`` (the seed)
and 187 for ``"stacked"`` (MFCC 40 + chroma 12 + mel 128 + spectral contrast 7 on the row
axis); ``frames`` is 173 (4 s at 22 050 Hz, hop 512).

Architectures:

- ``"seed"``: the seed project's CNN, layer for layer (the reference).
- ``"pooled"``: per-row mean/std/min/max statistics over time feeding a small, strongly
  regularised dense network. Emotion in acted speech is mostly global (pitch level and
  range, energy, spectral tilt); pooling removes the timing that a 2-D CNN on 960
  utterances overfits to, which is what breaks speaker independence.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

INPUT_ROWS: dict[str, int] = {"mfcc": 40, "stacked": 40 + 12 + 128 + 7}
FAMILIES: dict[str, tuple[str, ...]] = {
    "mfcc": ("mfcc",),
    "stacked": ("mfcc", "chroma", "mel", "contrast"),
}
FRAMES = 173
ARCHITECTURES = ("seed", "pooled")

InputKind = Literal["mfcc", "stacked"]


def input_shape_for(input_kind: str, frames: int = FRAMES) -> tuple[int, int, int]:
    """``(rows, frames, 1)`` for an input kind (``"mfcc"`` or ``"stacked"``)."""
    if input_kind not in INPUT_ROWS:
        raise ValueError(f"unknown model input {input_kind!r}; choose one of {sorted(INPUT_ROWS)}")
    return (INPUT_ROWS[input_kind], frames, 1)


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
            layers.Dense(n_classes, activation="softmax"),
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
    outputs = layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="pooled_mlp")


def build_model(architecture: str, input_shape: tuple[int, int, int], n_classes: int) -> Any:
    """An uncompiled Keras model of the named architecture (see the module docstring)."""
    if architecture == "seed":
        return build_seed_cnn(input_shape, n_classes)
    if architecture == "pooled":
        return build_pooled_mlp(input_shape, n_classes)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
