"""The schema: the numbered migrations in ``sql/migrations``, applied in order, each in its own
transaction, and the views of ``sql/views.sql`` recreated after them; plus :func:`writing`,
the writer's open-migrate-close, which lives here because it migrates the file it opens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ser_pipeline.labels import EMOTIONS, NEGATIVE_EMOTIONS
from ser_pipeline.resources import SQL_DIR
from ser_pipeline.settings import Settings
from ser_pipeline.warehouse.connection import connect, transaction

MIGRATIONS_DIR = SQL_DIR / "migrations"
VIEWS_FILE = SQL_DIR / "views.sql"
_MIGRATION_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations() -> list[Migration]:
    """The numbered migrations in ``sql/migrations``, in order."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {MIGRATIONS_DIR}: {versions}")
    return found


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The highest migration applied (0 for an empty database)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = 'main'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection, target: int | None = None) -> list[int]:
    """Apply the migrations not yet applied (up to ``target``), then (re)create the views.

    Each migration runs in its own transaction together with its ``schema_migrations`` row,
    so a failed migration leaves the database at the previous version. Returns the versions
    applied now.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = schema_version(con)
    applied = []
    for migration in migrations():
        if migration.version <= current or (target is not None and migration.version > target):
            continue
        with transaction(con):
            con.execute(migration.path.read_text())
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [migration.version, migration.name])
        applied.append(migration.version)
    if schema_version(con) >= 1:
        with transaction(con):
            con.executemany(
                "INSERT INTO emotions VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET position = excluded.position, is_negative = excluded.is_negative",
                [[e, i, e in NEGATIVE_EMOTIONS] for i, e in enumerate(EMOTIONS)],
            )
    if target is None or target >= max((m.version for m in migrations()), default=0):
        con.execute(VIEWS_FILE.read_text())
    return applied


@contextmanager
def writing(path: str | Path | None = None, wait_s: float | None = None, *, settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for writing, migrate it, yield the connection and close it again.

    The pattern for every writer: hold the file only for the few statements that need it.
    """
    con = connect(path, read_only=False, wait_s=wait_s, settings=settings)
    try:
        migrate(con)
        yield con
    finally:
        con.close()
