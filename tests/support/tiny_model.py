"""A small real model for pipeline tests: trained a few epochs on generated speech, registered
as champion. It labels audio through the real feature, inference and registry code."""

from __future__ import annotations

import numpy as np


def train_tiny_champion(root, epochs: int = 3, seed: int = 0, input_kind: str | None = None) -> tuple[str, str]:
    """Generate a small corpus under ``root``, train the recommended recipe (or ``input_kind``'s)
    on it through the library's one training path (``retraining.train_and_register``), register and promote it.
    Returns ``(registry_url, version)``; its stores and warehouse live under ``root`` too."""
    from pathlib import Path

    from ser_pipeline.training import registry

    from ser_pipeline.runs import retrain as retraining

    from ser_pipeline import synthetic as synth
    from ser_pipeline.settings import Settings
    from ser_pipeline.training.fit import recipe_for

    root = Path(root)
    settings = Settings(registry_url=(root / "registry").as_uri(), feature_store_url=(root / "features").as_uri(),
                        warehouse_path=root / "warehouse.duckdb", archive_url=(root / "archive").as_uri())
    corpus = (root / "corpus").as_uri()
    synth.generate_corpus(corpus, n_speakers=4, utterances_per_emotion=2, seed=seed, duration_s=(1.0, 2.0))
    config = recipe_for(input_kind, epochs=epochs, batch_size=16, seed=seed, early_stopping_patience=epochs, corrupted_copies=1)
    run = retraining.train_and_register(settings, {"synth": corpus}, config, promote_if_better=False)
    retraining.promote(settings, run.registration.version)
    assert registry.champion_version(settings.registry_url, settings=settings) == run.registration.version
    return settings.registry_url, run.registration.version


def as_float_wav_scaled(path, factor: float) -> None:
    """Rewrite a WAV as 32-bit float multiplied by ``factor`` (an un-normalised float export)."""
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    sf.write(path, np.asarray(y, dtype=np.float32) * factor, sr, subtype="FLOAT")


_SHARED: dict[str, tuple[str, str]] = {}


def shared_champion(tmp_path_factory, input_kind: str | None = None) -> tuple[str, str]:
    """``(registry_url, version)`` of the one tiny champion of the test session of the recommended
    recipe (or of ``input_kind``'s); tests only read it."""
    key = input_kind or "recommended"
    if key not in _SHARED:
        _SHARED[key] = train_tiny_champion(tmp_path_factory.mktemp(f"shared-champion-{key}"), input_kind=input_kind)
    return _SHARED[key]
