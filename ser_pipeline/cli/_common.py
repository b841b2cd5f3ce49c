"""Helpers shared by the CLI modules: exit codes, settings from flags, output formats."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from ..settings import Settings, get_settings, override

EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and found a problem (some inputs failed, a check failed)
EXIT_USAGE = 2  # bad arguments (typer/click uses 2 as well)


def settings_from(**flags: Any) -> Settings:
    return override(get_settings(), **flags)


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
