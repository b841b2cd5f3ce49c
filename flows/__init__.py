"""Prefect flows: wiring of ``ser_pipeline`` functions into tasks. No pipeline logic lives here.

Importing the flows turns Prefect's telemetry off unless the caller chose otherwise: the
ephemeral API server a flow called from Python starts would otherwise try to reach Prefect's
servers (and log an ERROR where none can be reached), and so would the client.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # the server's telemetry service
os.environ.setdefault("DO_NOT_TRACK", "1")  # the client's SDK analytics
