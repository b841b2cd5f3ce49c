"""Prefect flows: wiring of ``ser_pipeline`` functions into tasks. No pipeline logic lives here.

Importing the flows sets two defaults for a flow called from Python (a script, ``python -c``,
standard input, a notebook), each kept where the caller chose otherwise:

* Prefect's telemetry off: the ephemeral API server such a call starts would otherwise try to
  reach Prefect's servers (and log an ERROR where none can be reached), and so would the client.
* Quiet, as the CLI is without ``-v``: Dask, Prefect, TensorFlow and the other libraries of
  :data:`~ser_pipeline.log_levels.THIRD_PARTY_LOGGERS` log warnings and errors only, unless
  ``PREFECT_LOGGING_LEVEL`` in the environment says ``INFO`` or ``DEBUG``: then Prefect and
  Dask log at that level (Dask's worker processes too, through ``DASK_LOGGING__DISTRIBUTED``)
  and the other libraries as they do by themselves. After this import,
  ``set_library_levels(logging.INFO)`` raises every library, in a running notebook say.
  Deployments set ``PREFECT_LOGGING_LEVEL=INFO`` (``prefect.yaml``), so their runs log as
  they did before these defaults.
"""

import logging
import os

from ser_pipeline.log_levels import set_library_levels

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # the server's telemetry service
os.environ.setdefault("DO_NOT_TRACK", "1")  # the client's SDK analytics


def _library_log_level() -> int:
    """The level a flow called from Python logs at, from ``PREFECT_LOGGING_LEVEL`` (WARNING
    unless set), written back for Prefect and Dask to read when they are imported after this."""
    name = os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING").upper()
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", name.lower())
    level = logging.getLevelName(name)
    return level if isinstance(level, int) else logging.WARNING


_LIBRARY_LOG_LEVEL = _library_log_level()

# Prefect and Dask set their loggers' levels when first imported: from the variables above, or,
# if imported before this module, from what they read then. The quiet default goes on top.
import distributed  # noqa: E402, F401
import prefect.main  # noqa: E402, F401

if _LIBRARY_LOG_LEVEL > logging.INFO:
    set_library_levels(_LIBRARY_LOG_LEVEL)
