"""The ``ser`` command line.

Each module in this package adds its commands through ``register(app)``; modules are
discovered here so that command groups stay beside one another without a central list.
Heavy libraries (TensorFlow, Great Expectations) are imported inside the commands, so
``ser --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    name="ser",
    help="Speech emotion recognition for survey and focus-group audio: features, models, warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="Log more: -v progress (INFO, libraries included), -vv everything (DEBUG)."),
) -> None:
    """Speech emotion recognition for survey and focus-group audio: features, models, warehouse."""
    from ._common import configure_logging

    configure_logging(verbose)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    app()
