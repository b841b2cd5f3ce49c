"""How a run lets its caller wrap each of its steps: ``step(fn)`` returns what to call in
place of the library function ``fn`` (the function itself by default; a Prefect task in
``flows/``, a timer in a benchmark, a progress bar in the CLI). The caller recognises a step
by the function it is handed, never by a name written twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Step = Callable[[Callable[..., Any]], Callable[..., Any]]


def run_as_is(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The default step: the library function itself."""
    return fn


def step_name(fn: Callable[..., Any]) -> str:
    """A step's name for people (task names, progress bars, timings): ``load_batch`` ->
    ``load-batch``."""
    return fn.__name__.replace("_", "-")
