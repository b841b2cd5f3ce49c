"""``ser version`` and ``ser config``: what is installed and which settings are in force."""

from __future__ import annotations

import typer

from ._common import print_json, settings_from


def register(app: typer.Typer) -> None:
    @app.command("version")
    def version() -> None:
        """Print the package version."""
        from ser_pipeline import __version__

        typer.echo(__version__)

    @app.command("config")
    def config(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
        """Show the effective settings (from SER_* variables and .env); secrets are masked."""
        settings = settings_from()
        values = {k: (str(v) if v is not None else None) for k, v in settings.model_dump().items()}
        if as_json:
            print_json(values)
        else:
            width = max(map(len, values))
            for key, value in values.items():
                typer.echo(f"SER_{key.upper():<{width}}  {value}")
