"""One typed settings object for the whole pipeline.

Every value comes from an environment variable ``SER_<NAME>`` (or a ``.env`` file), and the
CLI overrides any of them with flags. The environment is read only at the edges (the CLI,
the flows, the demo, benchmarks: :func:`get_settings`); the library takes the resulting
object, or the URL, path or key it configures, as an argument and never looks it up. Local
defaults put everything under ``./demo-data``; production points the URLs at ``s3://`` and
nothing else changes, since ``file://`` and ``s3://`` go through the same fsspec code path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _local_url(relative: str) -> str:
    return Path(relative).resolve().as_uri()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SER_", env_file=".env", extra="ignore")

    # Where things live.
    archive_url: str = Field(default_factory=lambda: _local_url("demo-data/archive"))
    feature_store_url: str = Field(default_factory=lambda: _local_url("demo-data/features"))
    registry_url: str = Field(default_factory=lambda: _local_url("demo-data/registry"))
    warehouse_path: Path = Path("demo-data/warehouse.duckdb")

    # Object store access; the standard AWS_* variables are used when these are unset.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_max_attempts: int = 8  # botocore's retries (standard mode: exponential backoff with jitter)
    s3_timeout_s: float = 30.0

    # Caches the pipeline builds itself (the bundled encoder's assembled weights).
    home: Path = Field(default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ser-pipeline")

    # Audio and features.
    sample_rate: int = 22_050
    workers: int = 0  # 0: all cores
    # Utterances per nightly batch (whole sessions): each batch pays two GX suite runs (~0.5 s
    # each, whatever its size) and one warehouse transaction, so batches are large. Only a
    # batch's features are held (~0.13 MB per stacked window; samples are featurised per
    # recording stretch and dropped), two batches at a time while the next one is prefetched.
    batch_size: int = 1024
    decode_span_s: float = 600.0  # a recording is decoded at most this many seconds at a time
    # The speech encoder whose embeddings the model hears: a bundled one ("whisper-base",
    # "whisper-tiny.en") or the path of any CTranslate2 Whisper directory.
    encoder: str = "whisper-base"
    # Transcripts: every labelled utterance written down by the encoder's Whisper model, redacted,
    # into the warehouse. False for archives whose consent does not cover transcripts: then no
    # text is written anywhere (warehouse, report, logs, artifacts).
    transcribe: bool = True

    # Session context: the chance that a participant's emotion persists to their next
    # utterance (the sticky transition matrix of context.py in the nightly run).
    context_stay: float = Field(default=0.8, gt=0.0, lt=1.0)

    # Warehouse.
    warehouse_wait_s: float = 30.0
    pseudonym_key: SecretStr = SecretStr("change-me-in-production")
    # A run still marked running whose process cannot be checked (another host) is taken for
    # dead once its last sign of life (its start, each batch loaded) is this old.
    run_stale_after_s: float = Field(default=6 * 3600.0, gt=0.0)

    # Scheduling and scale-out.
    timezone: str = "UTC"
    dask_address: str | None = None  # an existing Dask scheduler (tcp://host:8786); None: a local cluster
    dask_workers: int = 0  # workers of the local cluster; 0: one per core
    # The local cluster's workers: threads in the calling process (False: works from any script,
    # notebook, `python -c` or stdin; deployments too, the faster here, docs/SCALE.md) or worker
    # processes (True: each re-imports the caller's __main__, so a script needs its main guard).
    dask_processes: bool = False
    dask_start_timeout_s: float = Field(default=60.0, gt=0.0)  # a cluster not up by then fails the run

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec keyword arguments for ``url`` (empty for local paths)."""
        if not url.startswith("s3://"):
            return {}
        opts: dict[str, Any] = {
            "use_listings_cache": False,  # a nightly run must see what arrived since the last listing
            "config_kwargs": {
                "retries": {"max_attempts": self.s3_max_attempts, "mode": "standard"},
                "connect_timeout": self.s3_timeout_s,
                "read_timeout": self.s3_timeout_s,
            },
        }
        client_kwargs: dict[str, Any] = {}
        endpoint = self.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        if self.s3_region:
            client_kwargs["region_name"] = self.s3_region
        if client_kwargs:
            opts["client_kwargs"] = client_kwargs
        if self.s3_access_key_id and self.s3_secret_access_key:
            opts["key"] = self.s3_access_key_id.get_secret_value()
            opts["secret"] = self.s3_secret_access_key.get_secret_value()
        return opts

    def effective_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


def get_settings() -> Settings:
    """The settings the environment gives now (``SER_*``, ``.env``): for the edges only, each
    of which reads them once per command or flow run and passes them on. Not cached, so a
    changed environment needs no cache to be cleared."""
    return Settings()


def override(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with the non-None ``changes`` applied (CLI flags use this)."""
    return settings.model_copy(update={k: v for k, v in changes.items() if v is not None})
