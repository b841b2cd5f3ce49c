"""The model registry: every trained model under a versioned prefix of the object store.

Layout under ``Settings.registry_url`` (``file://`` or ``s3://``, through fsspec)::

    models/<version>/model.keras      the Keras model
    models/<version>/normalizer.npz   normalisation statistics (fitted on training data)
    models/<version>/meta.json        labels, feature-spec hash, input kind, architecture,
                                      training-data fingerprint, split speakers, config
    models/<version>/metrics.json     test metrics (evaluation.evaluate output)
    champion.json                     {"version": ..., "promoted_at": ...}

``meta.json`` is written last, so a version without it is incomplete and ignored. Versions
sort by creation time (``20261126T181500-1a2b3c``). ``promote_if_better`` promotes a new
model only when its UAR beats the champion's *on the same test speakers*; figures on
different speakers are not comparable.

Every function takes the registry's URL (the caller's ``Settings.registry_url``) and the
caller's ``settings`` for the store's options; nothing is looked up here.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ser_pipeline.errors import SerError
from ser_pipeline.labels import LabelSet
from ser_pipeline.training.normalization import Normalizer
from ser_pipeline.settings import Settings
from ser_pipeline.storage import filesystem, join, read_bytes, write_bytes_atomic

CHAMPION = "champion"


class ModelNotFound(SerError, LookupError):
    """The registry has no such version (or no champion yet)."""


@dataclass(frozen=True)
class ModelInfo:
    version: str
    created_at: str
    architecture: str
    input_kind: str
    feature_spec_hash: str
    fingerprint: str
    test_speakers: tuple[str, ...]
    uar: float | None
    accuracy: float | None
    champion: bool


def new_version(fingerprint: str = "") -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{(fingerprint[:4] or '')}{uuid.uuid4().hex[:4]}"


def save_model(
    trained: Any,
    metrics: dict[str, Any] | None,
    registry_url: str,
    version: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Store ``trained`` (a TrainedModel) and its test ``metrics``; returns the new version."""
    root = str(registry_url)
    version = version or new_version(trained.fingerprint)
    prefix = join(root, "models", version)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        trained.model.save(path)
        write_bytes_atomic(join(prefix, "model.keras"), path.read_bytes(), settings)
    write_bytes_atomic(join(prefix, "normalizer.npz"), trained.normalizer.to_bytes(), settings)
    write_bytes_atomic(join(prefix, "metrics.json"), json.dumps(metrics or {}, indent=2, default=str).encode(), settings)
    meta = {
        **trained.metadata(),
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "test_speakers": list(trained.split_speakers.get("test", [])),
        "uar": (metrics or {}).get("uar"),
        "accuracy": (metrics or {}).get("accuracy"),
    }
    write_bytes_atomic(join(prefix, "meta.json"), json.dumps(meta, indent=2).encode(), settings)
    return version


def _read_json(url: str, settings: Settings | None) -> dict[str, Any] | None:
    fs, path = filesystem(url, settings)
    if not fs.exists(path):
        return None
    return json.loads(read_bytes(url, settings))


def champion_version(registry_url: str, settings: Settings | None = None) -> str | None:
    pointer = _read_json(join(str(registry_url), "champion.json"), settings)
    return pointer["version"] if pointer else None


def _meta(root: str, version: str, settings: Settings | None) -> dict[str, Any]:
    meta = _read_json(join(root, "models", version, "meta.json"), settings)
    if meta is None:
        raise ModelNotFound(f"no model version {version!r} in registry {root}")
    return meta


def model_meta(version: str, registry_url: str, settings: Settings | None = None) -> dict[str, Any]:
    """The stored description of ``version`` (meta.json); raises :class:`ModelNotFound`."""
    return _meta(str(registry_url), version, settings)


def list_models(registry_url: str, settings: Settings | None = None) -> list[ModelInfo]:
    """Every complete model version, oldest first."""
    root = str(registry_url)
    fs, models_path = filesystem(join(root, "models"), settings)
    if not fs.exists(models_path):
        return []
    champion = champion_version(root, settings)
    infos = []
    for entry in sorted(fs.ls(models_path, detail=False)):
        version = entry.rstrip("/").rsplit("/", 1)[-1]
        meta = _read_json(join(root, "models", version, "meta.json"), settings)
        if meta is None:
            continue
        infos.append(
            ModelInfo(
                version=version, created_at=meta["created_at"], architecture=meta["architecture"],
                input_kind=meta["input_kind"], feature_spec_hash=meta["feature_spec_hash"],
                fingerprint=meta["fingerprint"], test_speakers=tuple(meta.get("test_speakers", [])),
                uar=meta.get("uar"), accuracy=meta.get("accuracy"), champion=version == champion,
            )
        )
    return infos


def promote(version: str, registry_url: str, settings: Settings | None = None) -> None:
    """Make ``version`` the champion (what ``load_model(url, "champion")`` returns)."""
    root = str(registry_url)
    _meta(root, version, settings)  # raises ModelNotFound
    pointer = {"version": version, "promoted_at": datetime.now(timezone.utc).isoformat()}
    write_bytes_atomic(join(root, "champion.json"), json.dumps(pointer).encode(), settings)


def promote_if_better(version: str, registry_url: str, settings: Settings | None = None) -> tuple[bool, str]:
    """Promote ``version`` when there is no champion, or when its UAR beats the champion's on
    the same test speakers. Returns (promoted, reason)."""
    root = str(registry_url)
    new = _meta(root, version, settings)
    current = champion_version(root, settings)
    if new.get("split_kind", "speaker") != "speaker":
        return False, "trained on a random (speaker-leaking) split; only speaker-split models are promoted"
    if current is None:
        promote(version, root, settings)
        return True, "no champion yet"
    if current == version:
        return False, "already the champion"
    old = _meta(root, current, settings)
    if sorted(new.get("test_speakers", [])) != sorted(old.get("test_speakers", [])):
        return False, f"test speakers differ from champion {current}'s; UARs are not comparable"
    if new.get("uar") is None or old.get("uar") is None:
        return False, "UAR missing; cannot compare"
    if new["uar"] > old["uar"]:
        promote(version, root, settings)
        return True, f"UAR {new['uar']:.4f} beats champion {current}'s {old['uar']:.4f}"
    return False, f"UAR {new['uar']:.4f} does not beat champion {current}'s {old['uar']:.4f}"


def load_model(registry_url: str, which: str = CHAMPION, settings: Settings | None = None) -> Any:
    """The TrainedModel stored as ``which`` (a version, or ``"champion"``)."""
    import keras

    from ser_pipeline.training.networks import custom_objects
    from ser_pipeline.training.fit import TrainConfig, TrainedModel

    root = str(registry_url)
    version = which
    if which == CHAMPION:
        version = champion_version(root, settings)
        if version is None:
            raise ModelNotFound(f"registry {root} has no champion yet; train a model or promote a version")
    meta = _meta(root, version, settings)
    prefix = join(root, "models", version)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(read_bytes(join(prefix, "model.keras"), settings))
        model = keras.saving.load_model(path, custom_objects=custom_objects())
    normalizer = Normalizer.from_bytes(read_bytes(join(prefix, "normalizer.npz"), settings))
    return TrainedModel(
        model=model,
        normalizer=normalizer,
        labels=LabelSet(labels=tuple(meta["labels"]), merge=tuple(tuple(m) for m in meta.get("label_merge", []))),
        feature_spec_hash=meta["feature_spec_hash"],
        input_kind=meta["input_kind"],
        architecture=meta["architecture"],
        fingerprint=meta["fingerprint"],
        split_speakers=meta["split_speakers"],
        config=TrainConfig(**{"corrupted_copies": 0, "speaker_prior_utterances": 0.0, "heard_group_max": 0, "clip_z": 0.0,
                                 "validation_share": 0.1, **meta["config"]}),  # fields older models did not record
        history=meta.get("history", {}),
        version=version,
        split_kind=meta.get("split_kind", "speaker"),
        feature_spec=meta.get("feature_spec"),
        temperature=float(meta.get("temperature", 1.0)),
    )


def load_metrics(version: str, registry_url: str, settings: Settings | None = None) -> dict[str, Any]:
    root = str(registry_url)
    _meta(root, version, settings)
    return _read_json(join(root, "models", version, "metrics.json"), settings) or {}
