"""Participant pseudonyms: ``participant_key = HMAC-SHA256(pseudonym_key, id)``, so raw
participant ids never reach the warehouse, and the re-keying of every stored reference when
the key is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import duckdb
import pandas as pd

from ser_pipeline.warehouse.connection import transaction


def _key_bytes(key: str | bytes | Any) -> bytes:
    if hasattr(key, "get_secret_value"):
        key = key.get_secret_value()
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def pseudonymise(participant_id: str, key: str | bytes | Any) -> str:
    """The participant's stable pseudonym: HMAC-SHA256 of the id under ``key``, hex (64 chars).

    Keyed rather than a plain hash so that nobody holding the warehouse but not the key can
    confirm a guessed id by hashing it. ``key`` is the caller's ``Settings.pseudonym_key``
    (passed, never looked up, so a rotation or a test cannot hash under the wrong key).
    """
    return hmac.new(_key_bytes(key), str(participant_id).encode("utf-8"), hashlib.sha256).hexdigest()


def rotate_pseudonym_key(
    con: duckdb.DuckDBPyConnection, participant_ids: Iterable[str], old_key: Any, new_key: Any
) -> int:
    """Re-key every participant reference from ``old_key`` to ``new_key`` in one transaction.

    The warehouse cannot invert its pseudonyms, so the raw ids come from the archive's
    ``participants.csv`` files. Returns the number of participant rows re-keyed.
    """
    mapping = pd.DataFrame(
        [(pseudonymise(p, old_key), pseudonymise(p, new_key)) for p in sorted(set(participant_ids))],
        columns=["old_key", "new_key"],
    )
    con.register("_rekey", mapping)
    try:
        with transaction(con):
            n = con.execute(
                "UPDATE participants SET participant_key = m.new_key FROM _rekey m WHERE participants.participant_key = m.old_key RETURNING 1"
            ).fetchall()
            for table in ("session_participants", "utterances"):
                con.execute(f"UPDATE {table} SET participant_key = m.new_key FROM _rekey m WHERE {table}.participant_key = m.old_key")
    finally:
        con.unregister("_rekey")
    return len(n)
