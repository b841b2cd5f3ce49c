"""Helpers shared by the CLI modules: exit codes, settings from flags, output formats."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer

from ser_pipeline.log_levels import set_library_levels
from ser_pipeline.settings import Settings, get_settings, override

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


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the handler was
    made: a command run in-process (a test's CliRunner, a notebook) swaps stderr and closes its
    stand-in afterwards."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbosity: int) -> None:
    """0: warnings and errors only (ours and every library's); 1 (-v): INFO; 2 (-vv): DEBUG.
    TensorFlow's C++ log lines follow the same rule."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    set_library_levels(level)
