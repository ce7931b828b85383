"""Progress display for long work (model load, conversion, ingestion), always on stderr.

stdout stays clean for `--json` output; rich degrades to plain lines when stderr is not a
terminal, so CI logs still show what ran and how long it took.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

_console: Console | None = None


def console() -> Console:
    """The shared stderr console, created on first use (no import-time side effects)."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while a step runs, then one line saying how long it took."""
    start = time.perf_counter()
    with console().status(message):
        yield
    console().print(f"[dim]{message} done in {time.perf_counter() - start:.1f}s[/dim]")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A progress bar over an iterable."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
