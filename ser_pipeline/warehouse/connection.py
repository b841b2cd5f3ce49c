"""Opening the warehouse file: :func:`connect` (read-only or writing, waiting out another
process's lock with backoff, then naming the holder) and :func:`transaction`, the one-commit
block every writer uses. Kept apart because every other module of the package needs these
and nothing else of each other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ser_pipeline.errors import WarehouseBusy
from ser_pipeline.settings import Settings

_LOCK_ERROR = re.compile(r"Could not set lock|Conflicting lock", re.IGNORECASE)
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def _describe_lock(exc: Exception) -> str:
    match = _LOCK_HOLDER.search(str(exc))
    if match:
        return f"process {match['pid']} ({match['program']})"
    return "another process"


def connect(
    path: str | Path | None = None,
    read_only: bool = False,
    wait_s: float | None = None,
    *,
    settings: Settings,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``path`` (default ``Settings.warehouse_path``).

    While another process holds the file, retry with exponential backoff (50 ms doubling up
    to 1 s) for up to ``wait_s`` seconds (default ``Settings.warehouse_wait_s``), then raise
    :class:`WarehouseBusy` naming the holding process. The session time zone is
    ``Settings.timezone``, which decides the week boundaries in the views: so every caller
    passes its ``settings``, and no connection falls back to another time zone.
    """
    path = Path(path or settings.warehouse_path)
    wait_s = settings.warehouse_wait_s if wait_s is None else wait_s
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist; create it with `ser warehouse migrate`")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait_s, 0.0)
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _LOCK_ERROR.search(str(exc)):
                raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WarehouseBusy(
                    f"warehouse {path} is locked by {_describe_lock(exc)}; waited {wait_s:g} s. "
                    "A writer holds it for the length of one transaction; if that process is stuck, stop it."
                ) from exc
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
    con.execute(f"SET TimeZone = '{_quote(settings.timezone)}'")
    return con


def _quote(text: str) -> str:
    return str(text).replace("'", "''")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
