"""Cleaning up after runs that were killed mid-way (SIGKILL, a lost worker, a reboot).

A killed run cannot say it stopped: ``ingest_runs`` keeps it ``running`` and the temporary
files of its interrupted writes (``.tmp-<pid>@<host>-…``, see ``storage.write_bytes_atomic``)
stay in the feature store. The next run calls :func:`recover_abandoned` as it starts: a run
still marked running is dead when its process is gone (same host: no such pid) or, on another
host where the process cannot be checked, when its last sign of life is older than
``settings.run_stale_after_s``. Dead runs are marked ``abandoned`` (when, by which run), and
the temporary files of dead processes are removed and counted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from ser_pipeline.settings import Settings
from ser_pipeline.storage import TempFile, find_temp_files, remove, this_host


@dataclass(frozen=True)
class Recovery:
    """What a starting run found and cleaned: the runs it marked abandoned, temp files removed."""

    abandoned_runs: tuple[str, ...] = ()
    temp_files_removed: tuple[str, ...] = ()


def process_alive(pid: int | None, host: str | None) -> bool | None:
    """True/False for a process of this host; None when it cannot be told (another host, no pid)."""
    if pid is None or host != this_host():
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _dead(pid: int | None, host: str | None, last_seen: float | None, stale_after_s: float, now: float) -> bool:
    alive = process_alive(pid, host)
    if alive is not None:
        return not alive
    return last_seen is not None and now - last_seen > stale_after_s


def _temp_file_dead(temp: TempFile, stale_after_s: float, now: float) -> bool:
    return _dead(temp.pid, temp.host, temp.modified, stale_after_s, now)


def recover_abandoned(settings: Settings, run_id: str, con: Any) -> Recovery:
    """Mark dead runs abandoned and remove dead processes' temporary files under the feature
    store (``con``: a writing warehouse connection; ``run_id``: the run doing it)."""
    from ser_pipeline import warehouse

    now = time.time()
    stale = settings.run_stale_after_s
    temps = [t for t in find_temp_files(settings.feature_store_url, settings) if _temp_file_dead(t, stale, now)]
    removed: list[str] = []
    for temp in temps:
        try:
            remove(temp.url, settings)
            removed.append(temp.url)
        except FileNotFoundError:
            pass  # removed by another run meanwhile
    abandoned = []
    for run in warehouse.running_runs(con, except_run=run_id):
        last_seen = (run.heartbeat_at or run.started_at).timestamp()
        if not _dead(run.pid, run.host, last_seen, stale, now):
            continue
        if process_alive(run.pid, run.host) is False:
            why = f"process {run.pid} on {run.host} is gone"
        else:
            why = f"no sign of life for {(now - last_seen) / 3600:.1f} h (host {run.host or 'unknown'})"
        theirs = [t for t in temps if t.url in removed and t.pid == run.pid and t.host == run.host]
        reason = f"abandoned: {why}; found by run {run_id}; {len(theirs)} temporary files removed"
        warehouse.abandon_run(con, run.run_id, found_by=run_id, reason=reason, tmp_files_removed=len(theirs))
        abandoned.append(run.run_id)
    return Recovery(tuple(abandoned), tuple(removed))
