"""``ser report``: a survey's self-contained HTML emotion report."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import EXIT_USAGE, fail, settings_from


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        survey: str = typer.Option(..., "--survey", "-s", help="Survey id."),
        out: Path = typer.Option(Path("reports"), "--out", "-o", help="Folder to write <survey>.html into."),
        model: str = typer.Option(None, "--model", "-m", help="Report this model version instead of the current one."),
        warehouse_path: Path = typer.Option(None, "--warehouse", "-w", help="Warehouse file (default: SER_WAREHOUSE_PATH)."),
    ) -> None:
        """Write one self-contained HTML report (charts inline) for a survey."""
        from ser_pipeline import warehouse
        from ser_pipeline.errors import SerError
        from ser_pipeline.warehouse.report import write_survey_report

        settings = settings_from(warehouse_path=warehouse_path)
        try:
            con = warehouse.connect(settings.warehouse_path, read_only=True, settings=settings)
        except (FileNotFoundError, SerError) as exc:
            fail(str(exc))
        try:
            path = write_survey_report(con, survey, out, model_version=model)
        except KeyError as exc:
            fail(str(exc.args[0]), EXIT_USAGE)
        finally:
            con.close()
        typer.echo(str(path))
