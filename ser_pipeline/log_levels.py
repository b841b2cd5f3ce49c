"""The log levels of the libraries the pipeline runs on, set the same way by both edges that
run it from a terminal or a notebook: the CLI (``-v``, ``-vv``) and the flows called from
Python (``PREFECT_LOGGING_LEVEL``). These libraries log their progress at INFO (Dask starting
each worker, Prefect's engine and ephemeral server, boto retries, GX), so a caller who asked
for nothing reads only what went wrong."""

from __future__ import annotations

import logging
import os

THIRD_PARTY_LOGGERS = ("distributed", "prefect", "botocore", "s3fs", "fsspec", "aiobotocore", "urllib3",
                       "great_expectations", "numba", "absl", "tensorflow", "keras", "httpx", "alembic",
                       "uvicorn", "py.warnings")


def set_library_levels(level: int) -> None:
    """Put every logger of :data:`THIRD_PARTY_LOGGERS` at ``level``, with the child loggers that
    libraries already imported gave levels of their own (Prefect does), and TensorFlow's C++
    log lines (read when TensorFlow is imported; a value the caller set is kept)."""
    prefixes = tuple(f"{name}." for name in THIRD_PARTY_LOGGERS)
    existing = [n for n in logging.root.manager.loggerDict if n.startswith(prefixes)]
    for name in (*THIRD_PARTY_LOGGERS, *existing):
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if level <= logging.DEBUG else "1" if level <= logging.INFO else "3")
