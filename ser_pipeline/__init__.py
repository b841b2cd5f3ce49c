"""ser-pipeline: speech emotion recognition as a batch analytics pipeline.

The library is plain Python (no Prefect imports) so that every step can be called from a
notebook; `flows/` wires these functions into Prefect tasks.
"""

__version__ = "0.1.0"
