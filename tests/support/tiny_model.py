"""A small real model for pipeline tests: trained a few epochs on generated speech, registered
as champion. It labels audio through the real feature, inference and registry code."""

from __future__ import annotations

import numpy as np


def train_tiny_champion(corpus_url: str, registry_url: str, settings=None, epochs: int = 3, seed: int = 0) -> str:
    """Generate a small corpus at ``corpus_url``, train on it, register and promote; the version."""
    from ser_pipeline import registry, synth
    from ser_pipeline.audio import load_audio
    from ser_pipeline.features import FeatureSpec, clip_windows, extract_features
    from ser_pipeline.labels import LabelSet
    from ser_pipeline.splits import speaker_split
    from ser_pipeline.training import TrainConfig, train

    items = synth.generate_corpus(corpus_url, n_speakers=4, utterances_per_emotion=2, seed=seed, duration_s=(1.0, 2.0))
    spec = FeatureSpec.from_settings(settings)
    windows = [clip_windows(load_audio(path, spec.sample_rate, settings=settings).samples, spec)[0] for path in items["path"]]
    feats = extract_features(windows, spec)
    split = speaker_split(items, seed=seed)
    labels = LabelSet.from_merge({})
    config = TrainConfig(architecture="pooled", epochs=epochs, batch_size=16, seed=seed, early_stopping_patience=epochs)
    trained = train(feats, items["emotion"], items["speaker"], split, labels, spec.hash, config,
                    utterance_ids=items["utterance_id"], progress=None)
    version = registry.save_model(trained, {"uar": 0.0, "accuracy": 0.0}, registry_url, settings=settings)
    registry.promote(version, registry_url, settings=settings)
    return version


def as_float_wav_scaled(path, factor: float) -> None:
    """Rewrite a WAV as 32-bit float multiplied by ``factor`` (an un-normalised float export)."""
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    sf.write(path, np.asarray(y, dtype=np.float32) * factor, sr, subtype="FLOAT")


_SHARED: dict[str, tuple[str, str]] = {}


def shared_champion(tmp_path_factory) -> tuple[str, str]:
    """``(registry_url, version)`` of one tiny champion per test session (tests only read it)."""
    if "champion" not in _SHARED:
        from ser_pipeline.settings import Settings

        root = tmp_path_factory.mktemp("shared-champion")
        registry_url = (root / "registry").as_uri()
        _SHARED["champion"] = (registry_url, train_tiny_champion((root / "corpus").as_uri(), registry_url, Settings()))
    return _SHARED["champion"]
