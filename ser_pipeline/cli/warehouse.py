"""``ser sql``, ``ser query`` and ``ser warehouse migrate|status``: the warehouse from a shell.

Queries run on a read-only connection and their ``--param`` values are bound as parameters,
never formatted into the SQL text.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ._common import EXIT_USAGE, fail, print_json, settings_from

FORMATS = ("table", "csv", "json")

WAREHOUSE_OPTION = typer.Option(None, "--warehouse", "-w", help="Warehouse file (default: SER_WAREHOUSE_PATH).")
PARAM_OPTION = typer.Option(None, "--param", "-p", help="A bound parameter NAME=VALUE for $NAME in the SQL; repeatable.")
FORMAT_OPTION = typer.Option("table", "--format", "-f", help="Output format: table, csv or json.")
MODEL_OPTION = typer.Option(None, "--model", "-m", help="Report this model version's labels instead of the current one.")


def _parse_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--param {item!r} is not of the form NAME=VALUE", EXIT_USAGE)
        params[name.strip()] = value
    return params


def _print_frame(frame: Any, fmt: str) -> None:
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}", EXIT_USAGE)
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=2))
        sys.stdout.write("\n")
    elif frame.empty:
        typer.echo(f"(no rows; columns: {', '.join(map(str, frame.columns))})")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200, "display.max_colwidth", 60):
            typer.echo(frame.to_string(index=False))


def _run(action) -> Any:
    """Run ``action`` and turn the warehouse's errors into exit codes with a clear message."""
    import duckdb

    from ser_pipeline.errors import SerError

    try:
        return action()
    except FileNotFoundError as exc:
        fail(str(exc))
    except (KeyError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc), EXIT_USAGE)
    except SerError as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        fail(f"{type(exc).__name__}: {exc}")


def register(app: typer.Typer) -> None:
    @app.command("sql")
    def sql_command(
        sql: str = typer.Argument(..., help="The SQL to run (read-only); use $name for parameters."),
        param: list[str] = PARAM_OPTION,
        fmt: str = FORMAT_OPTION,
        model: str = MODEL_OPTION,
        warehouse_path: Path = WAREHOUSE_OPTION,
    ) -> None:
        """Run SQL on the warehouse, read-only, with bound parameters; print the result."""
        from ser_pipeline import warehouse

        settings = settings_from(warehouse_path=warehouse_path)
        params = _parse_params(param)
        frame = _run(lambda: warehouse.run_query(settings.warehouse_path, sql, params or None, model_version=model, settings=settings))
        _print_frame(frame, fmt)

    @app.command("query")
    def query_command(
        name: str = typer.Argument(None, help="Query name (a file in sql/queries); see --list."),
        param: list[str] = PARAM_OPTION,
        fmt: str = FORMAT_OPTION,
        model: str = MODEL_OPTION,
        list_queries: bool = typer.Option(False, "--list", "-l", help="List the queries, their questions and parameters."),
        warehouse_path: Path = WAREHOUSE_OPTION,
    ) -> None:
        """Run one of the analysts' queries (sql/queries/NAME.sql) with --param NAME=VALUE."""
        from ser_pipeline import warehouse

        queries = warehouse.named_queries()
        if list_queries:
            if fmt == "json":
                print_json([{"name": q.name, "question": q.question, "params": dict(q.params)} for q in queries.values()])
                return
            width = max(map(len, queries))
            for q in queries.values():
                typer.echo(f"{q.name:<{width}}  {q.question}")
                typer.echo(f"{'':<{width}}  params: {q.describe_params()}")
            return
        if not name:
            fail("give a query NAME or --list", EXIT_USAGE)
        settings = settings_from(warehouse_path=warehouse_path)
        params = _parse_params(param)
        frame = _run(lambda: warehouse.run_named_query(settings.warehouse_path, name, params, model_version=model, settings=settings))
        _print_frame(frame, fmt)

    group = typer.Typer(help="Create, upgrade and inspect the DuckDB warehouse.", no_args_is_help=True)
    app.add_typer(group, name="warehouse")

    @group.command("migrate")
    def migrate_command(
        warehouse_path: Path = WAREHOUSE_OPTION,
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Create the warehouse or upgrade it in place to the newest schema; (re)create the views."""
        from ser_pipeline import warehouse

        settings = settings_from(warehouse_path=warehouse_path)

        def migrate() -> tuple[list[int], int]:
            con = warehouse.connect(settings.warehouse_path, settings=settings)
            try:
                return warehouse.migrate(con), warehouse.schema_version(con)
            finally:
                con.close()

        applied, version = _run(migrate)
        if as_json:
            print_json({"warehouse": str(settings.warehouse_path), "applied": applied, "schema_version": version})
        else:
            done = f"applied migrations {', '.join(map(str, applied))}" if applied else "already up to date"
            typer.echo(f"{settings.warehouse_path}: {done}; schema version {version}")

    @group.command("status")
    def status_command(
        warehouse_path: Path = WAREHOUSE_OPTION,
        as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    ) -> None:
        """Show the schema version, row counts, the current model and the last ingest run."""
        from ser_pipeline import warehouse

        settings = settings_from(warehouse_path=warehouse_path)

        def status() -> dict:
            con = warehouse.connect(settings.warehouse_path, read_only=True, settings=settings)
            try:
                return warehouse.status(con)
            finally:
                con.close()

        info = _run(status)
        if as_json:
            print_json({"warehouse": str(settings.warehouse_path), **info})
            return
        typer.echo(f"warehouse       {settings.warehouse_path}")
        typer.echo(f"schema version  {info['schema_version']}" + (f" (pending: {info['pending_migrations']})" if info["pending_migrations"] else ""))
        model = info["current_model"]
        typer.echo(f"current model   {model['model_version']} ({model['chosen_by']})" if model else "current model   none")
        run = info["last_ingest_run"]
        typer.echo(f"last ingest run {run['run_id']} {run['status']} started {run['started_at']}" if run else "last ingest run none")
        for table, n in info["rows"].items():
            typer.echo(f"  {table:<20} {n:>10,}")

    @group.command("rotate-key")
    def rotate_key_command(
        new_key_env: str = typer.Option(..., "--new-key-env", help="Name of the environment variable holding the new key."),
        archive: str = typer.Option(None, "--archive", help="Archive URL whose participants files name the raw ids (default: SER_ARCHIVE_URL)."),
        warehouse_path: Path = WAREHOUSE_OPTION,
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Re-key every participant pseudonym from SER_PSEUDONYM_KEY to a new key, in one transaction.

        Keys are read from the environment, never from the command line (shell history).
        Afterwards set SER_PSEUDONYM_KEY to the new key everywhere.
        """
        import os

        from ser_pipeline import warehouse
        from ser_pipeline.archive.manifest import read_archive

        settings = settings_from(warehouse_path=warehouse_path, archive_url=archive)
        new_key = os.environ.get(new_key_env)
        if not new_key:
            fail(f"environment variable {new_key_env} is empty or unset", EXIT_USAGE)

        def rotate() -> tuple[int, int]:
            raw_ids = {p.participant_id for survey in read_archive(settings.archive_url, settings) for p in survey.participants}
            with warehouse.writing(settings.warehouse_path, settings=settings) as con:
                return len(raw_ids), warehouse.rotate_pseudonym_key(con, raw_ids, settings.pseudonym_key, new_key)

        n_ids, n_rekeyed = _run(rotate)
        if as_json:
            print_json({"participant_ids_in_archive": n_ids, "participants_rekeyed": n_rekeyed})
        else:
            typer.echo(f"re-keyed {n_rekeyed} participant rows ({n_ids} ids in the archive); now set SER_PSEUDONYM_KEY to the new key")
