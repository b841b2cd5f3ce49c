"""The typed errors the pipeline raises. Each names the input it is about and the cause."""

from __future__ import annotations


class SerError(Exception):
    """Base class of every error this package raises on purpose."""


class AudioDecodeError(SerError):
    """An input could not be read as audio: empty, truncated, corrupt or not audio at all."""

    def __init__(self, source: str, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class FeatureSpecMismatch(SerError):
    """A model was asked to run on features made with another FeatureSpec."""


class EncoderUnavailable(SerError):
    """The speech encoder's weights cannot be had: a package not installed, a missing part, a
    wrong checksum, a directory that is not a CTranslate2 Whisper model."""

    def __init__(self, source: str, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ManifestError(SerError):
    """A manifest or sidecar file is malformed or points outside the archive."""

    def __init__(self, source: str, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class FeatureStoreError(SerError):
    """The feature store could not be written (disk full, read-only, permission denied, the
    object store refusing); nothing of the batch was stored."""

    def __init__(self, store_url: str, reason: str):
        self.store_url = str(store_url)
        self.reason = reason
        super().__init__(f"cannot write to the feature store {self.store_url}: {reason}")


class WarehouseBusy(SerError):
    """The DuckDB warehouse stayed locked by another process for longer than we wait."""


class ValidationFailed(SerError):
    """A Great Expectations suite failed; the batch it guarded was not loaded."""


class NightlyRunFailed(SerError):
    """A nightly labeling run ended failed: a validation suite failed (that batch was not
    loaded) or the run stopped on an error. ``summary`` is the run's report summary."""

    def __init__(self, message: str, summary: dict | None = None):
        self.summary = dict(summary or {})
        super().__init__(message)


class ClusterStartFailed(SerError):
    """The nightly flow's Dask cluster could not be had: its workers did not start, it was not
    up within ``SER_DASK_START_TIMEOUT_S``, or its scheduler could not be reached. ``reason``
    says why and which setting chooses another runner."""

    def __init__(self, cluster: str, reason: str):
        self.cluster = cluster
        self.reason = reason
        super().__init__(f"{cluster}: {reason}")
