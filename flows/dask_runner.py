"""The nightly flow's Dask task runner, chosen by settings, whose cluster must start in time.

prefect-dask starts its cluster (or connects to ``address``) when the first task is
submitted. Left alone, a cluster that cannot start fails the run with Dask's own words
("Nanny failed to start.") and no hint of what to change, or waits as long as its workers
take. :class:`DeadlineDaskTaskRunner` gives that start ``start_timeout_s`` and turns a
failure or a timeout into :class:`~ser_pipeline.errors.ClusterStartFailed`, which names the
cause and the setting that chooses another runner, and closes whatever had started. It is
raised in the flow, where the first batch is submitted, so no task retry repeats it and the
run stops at once, recorded as failed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from typing import Any

from prefect_dask import DaskTaskRunner

from ser_pipeline.errors import ClusterStartFailed
from ser_pipeline.settings import Settings

OTHER_RUNNERS = ("Set SER_DASK_PROCESSES=false to label the batches on threads of this process, "
                 "or SER_DASK_ADDRESS to use a running Dask cluster.")


def local_cluster_kwargs(settings: Settings) -> dict[str, Any]:
    """``LocalCluster`` arguments for ``settings.dask_workers`` batches at a time (0: one per
    core). Threads (the default): one worker in this process with that many threads, which
    needs nothing re-imported and loads the model once for all threads. Processes
    (``settings.dask_processes``): that many single-threaded worker processes, each importing
    the pipeline and loading the model once; the caller's ``__main__`` must be importable
    (a deployment's entry point is). Either way a batch spreads its decoding and features over
    ``SER_WORKERS`` threads of its own."""
    batches_at_once = settings.dask_workers if settings.dask_workers > 0 else (os.cpu_count() or 1)
    if settings.dask_processes:
        return {"processes": True, "n_workers": batches_at_once, "threads_per_worker": 1, "dashboard_address": None}
    return {"processes": False, "n_workers": 1, "threads_per_worker": batches_at_once, "dashboard_address": None}


def task_runner(settings: Settings) -> DeadlineDaskTaskRunner:
    """The runner ``settings`` choose: the cluster at ``settings.dask_address`` when set
    (``tcp://scheduler:8786``), else a local cluster (:func:`local_cluster_kwargs`); either
    up within ``settings.dask_start_timeout_s``."""
    if settings.dask_address:
        return DeadlineDaskTaskRunner(address=settings.dask_address, start_timeout_s=settings.dask_start_timeout_s)
    return DeadlineDaskTaskRunner(cluster_kwargs=local_cluster_kwargs(settings), start_timeout_s=settings.dask_start_timeout_s)


class DeadlineDaskTaskRunner(DaskTaskRunner):
    """prefect-dask's runner whose cluster, started on the first task submitted, is up within
    ``start_timeout_s`` or fails the run with :class:`ClusterStartFailed` (see module docstring)."""

    def __init__(self, *, start_timeout_s: float = 60.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.start_timeout_s = start_timeout_s

    def duplicate(self) -> DeadlineDaskTaskRunner:
        return type(self)(address=self.address, cluster_class=self.cluster_class, cluster_kwargs=self.cluster_kwargs,
                          adapt_kwargs=self.adapt_kwargs, client_kwargs=self.client_kwargs,
                          performance_report_path=self.performance_report_path, start_timeout_s=self.start_timeout_s)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._start_within_deadline()
        return self._client

    def _start_within_deadline(self) -> None:
        """Start (or reach) the cluster on a daemon thread and wait ``start_timeout_s`` for it:
        a start that hangs can then neither hold the run nor keep the process from exiting.
        On failure or timeout, what had started is closed, now or when the start returns; worker
        processes still starting at the deadline are terminated, so their cluster's start fails
        now instead of when Dask closes it at exit (up to 10 s)."""
        finished, given_up = threading.Event(), threading.Event()
        failures: list[BaseException] = []
        children_before = set(multiprocessing.active_children())

        def start() -> None:
            try:
                DaskTaskRunner.client.fget(self)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                failures.append(exc)
            finally:
                finished.set()
                if given_up.is_set():
                    self._close_cluster()

        threading.Thread(target=start, name="dask-cluster-start", daemon=True).start()
        if finished.wait(self.start_timeout_s):
            if not failures:
                return
            self._close_cluster()
            raise ClusterStartFailed(self._cluster_name(), self._failure_reason(failures[0])) from failures[0]
        given_up.set()
        for process in set(multiprocessing.active_children()) - children_before:
            process.terminate()
        finished.wait(5.0)
        self._close_cluster()
        raise ClusterStartFailed(self._cluster_name(), self._timeout_reason())

    def _close_cluster(self) -> None:
        self._exit_stack.close()
        self._client = None

    def _cluster_name(self) -> str:
        if self.address:
            return f"the Dask scheduler at {self.address}"
        kwargs = self.cluster_kwargs
        if kwargs.get("processes", True):
            return f"a local Dask cluster of {kwargs.get('n_workers', 'one per core')} worker processes"
        return f"a local Dask cluster of {kwargs.get('threads_per_worker', 'one per core')} threads"

    def _failure_reason(self, error: BaseException) -> str:
        dask_error = f"{type(error).__name__}: {error}"
        if self.address:
            return (f"could not be reached ({dask_error}). Check SER_DASK_ADDRESS, or unset it for a local cluster "
                    f"(SER_DASK_PROCESSES=false: threads of this process).")
        if self.cluster_kwargs.get("processes", True):
            return (f"its workers could not start ({dask_error}). Each worker process re-imports the caller's main "
                    f"module ({_main_module_source()}): that fails for code read from standard input, and a script "
                    f"that calls the flow outside `if __name__ == \"__main__\":` runs it again in every worker; "
                    f"the workers' own errors are printed above. {OTHER_RUNNERS}")
        return f"it could not start ({dask_error}). Set SER_DASK_ADDRESS to use a running Dask cluster."

    def _timeout_reason(self) -> str:
        waited = f"was not up within {self.start_timeout_s:g} s (SER_DASK_START_TIMEOUT_S)"
        if self.address:
            return f"{waited}. Check SER_DASK_ADDRESS, or unset it for a local cluster."
        if self.cluster_kwargs.get("processes", True):
            return (f"{waited}: its worker processes did not all start (each imports the pipeline and the caller's "
                    f"main module, {_main_module_source()}). Raise SER_DASK_START_TIMEOUT_S on a slow machine. "
                    f"{OTHER_RUNNERS}")
        return f"{waited}. Raise SER_DASK_START_TIMEOUT_S on a slow machine, or set SER_DASK_ADDRESS."


def _main_module_source() -> str:
    """Where the caller's main module came from, as a worker process would look for it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if path else "no file: `python -c` or a notebook"
