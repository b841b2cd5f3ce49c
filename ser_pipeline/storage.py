"""Object-store access through fsspec: the same code for ``file://``, plain paths and ``s3://``.

Every function takes the caller's ``settings`` for the store's options (endpoint, credentials,
retries). ``None`` means fsspec's own defaults, not a global: enough for local paths, and for
``s3://`` the AWS SDK's environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from ser_pipeline.settings import Settings

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".aifc", ".oga", ".opus")


def filesystem(url: str, settings: Settings | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for ``url`` and the path inside it, opened with ``settings``' options."""
    if settings is None:
        # fsspec caches filesystems by their options: with none given, an S3 instance made for
        # an earlier AWS environment (another endpoint) would be handed back.
        options: dict[str, Any] = {} if str(url).startswith(("file:", "/")) or "://" not in str(url) else {"skip_instance_cache": True}
    else:
        options = settings.storage_options(str(url))
    return url_to_fs(str(url), **options)


def join(url: str, *parts: str) -> str:
    return posixpath.join(str(url).rstrip("/"), *parts)


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Turn a path returned by ``fs`` back into a URL with its protocol."""
    return fs.unstrip_protocol(path)


def list_files(url: str, extensions: tuple[str, ...] | None = None, settings: Settings | None = None) -> list[str]:
    """Every file under ``url`` (recursively), as URLs, sorted; optionally filtered by extension."""
    fs, root = filesystem(url, settings)
    if not fs.exists(root):
        return []
    found = fs.find(root)
    if extensions:
        found = [p for p in found if p.lower().endswith(extensions)]
    return sorted(to_url(fs, p) for p in found)


def read_bytes(url: str, settings: Settings | None = None) -> bytes:
    fs, path = filesystem(url, settings)
    return fs.cat_file(path)


def content_hash(data: bytes) -> str:
    """The content hash that identifies an input everywhere (sha256, hex)."""
    return hashlib.sha256(data).hexdigest()


TEMP_PREFIX = ".tmp-"
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")


def this_host() -> str:
    """This machine's name as temp-file names and ingest runs carry it (``-`` and ``@`` removed,
    so a temp name parses back)."""
    return _HOST_UNSAFE.sub("", socket.gethostname())[:64] or "localhost"


def temp_owner() -> str:
    """``<pid>@<host>``: which process writes a temporary file, so that once it has died the
    next run can remove what it left (see ``run_recovery``)."""
    return f"{os.getpid()}@{this_host()}"


@dataclass(frozen=True)
class TempFile:
    """A temporary file of :func:`write_bytes_atomic` (``.tmp-<pid>@<host>-<uuid>-<name>``)."""

    url: str
    pid: int | None  # None: an older name without its writer
    host: str | None
    modified: float | None  # POSIX seconds, when the store says


_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?:(?P<pid>\d+)@(?P<host>[A-Za-z0-9.]+)-)?[0-9a-f]{32}-")


def find_temp_files(url: str, settings: Settings | None = None) -> list[TempFile]:
    """Every temporary file of an atomic write under ``url`` (recursively)."""
    fs, root = filesystem(url, settings)
    if not fs.exists(root):
        return []
    found = []
    for path, info in fs.find(root, detail=True).items():
        match = _TEMP_NAME.match(posixpath.basename(path))
        if not match:
            continue
        modified = info.get("mtime") or info.get("LastModified") or info.get("created")
        if hasattr(modified, "timestamp"):
            modified = modified.timestamp()
        found.append(TempFile(to_url(fs, path), int(match["pid"]) if match["pid"] else None, match["host"],
                              float(modified) if modified is not None else None))
    return sorted(found, key=lambda t: t.url)


def remove(url: str, settings: Settings | None = None) -> None:
    fs, path = filesystem(url, settings)
    fs.rm(path)


def write_bytes_atomic(url: str, data: bytes, settings: Settings | None = None) -> None:
    """Write ``data`` to a temporary name beside ``url``, then rename it into place.

    Readers listing the folder never see a half-written file: they see either nothing or the
    whole file. On object stores, where a PUT is already atomic, the rename is a copy.
    """
    fs, path = filesystem(url, settings)
    parent = posixpath.dirname(path)
    fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f"{TEMP_PREFIX}{temp_owner()}-{uuid.uuid4().hex}-{posixpath.basename(path)}")
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, path)
    except BaseException:
        # A full disk or a refused write must not leave a partial file behind (a process
        # killed here can: readers skip ``.tmp-`` names).
        try:
            if fs.exists(tmp):
                fs.rm(tmp)
        except Exception:
            pass
        raise


def walk_dirs(url: str, settings: Settings | None = None) -> Iterator[str]:
    fs, root = filesystem(url, settings)
    for dirpath, _dirs, _files in fs.walk(root):
        yield to_url(fs, dirpath)


def open_url(url: str, mode: str = "rb", settings: Settings | None = None, **kwargs: Any):
    fs, path = filesystem(url, settings)
    return fs.open(path, mode, **kwargs)
