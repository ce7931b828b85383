"""Progress display for long work (model load, conversion, ingestion, training), always on stderr.

stdout stays clean for `--json` output. On a terminal, progress is a rich spinner or bar; when
stderr is not a terminal (a log file, CI, a pipe) a bar would either be silent until the end or
flood the log, so progress becomes plain timestamped lines: one when a stage starts, one when it
ends, and at most one every `PLAIN_INTERVAL` seconds in between.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
StepProgress = Callable[[int, int, float], None]  # (step, total, loss); a negative step closes it

PLAIN_INTERVAL = 10.0  # seconds between plain progress lines of one stage

_console: Console | None = None


def console() -> Console:
    """The shared stderr console, created on first use (no import-time side effects)."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


def plain_line(message: str) -> None:
    """One timestamped line on stderr, written as is (no markup, no wrapping), for logs."""
    stream = console().file
    stream.write(f"{time.strftime('%H:%M:%S')} {message}\n")
    stream.flush()


def report_stage(message: str) -> None:
    """A stage of a long run (the `report` callback of sleep and merge): a line either way,
    timestamped when stderr is a log rather than a terminal."""
    if console().is_terminal:
        console().print(message, highlight=False, markup=False)
    else:
        plain_line(message)


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class PlainSteps:
    """Step progress as plain lines: the first step, then at most one line every `interval`
    seconds, then the last step, each with the loss, time so far and an estimate of time left."""

    def __init__(self, label: str, interval: float = PLAIN_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.interval, self.clock = label, interval, clock
        self.start: float | None = None
        self.last_line = float("-inf")
        self.last_step = self.last_total = 0

    def __call__(self, step: int, total: int, loss: float) -> None:
        if step < 0:  # closing call: say so only if the stage stopped before its end
            if self.start is not None and 0 < self.last_step < self.last_total:
                plain_line(f"{self.label}: stopped at step {self.last_step}/{self.last_total}")
            return
        now = self.clock()
        if self.start is None:
            self.start = now
        self.last_step, self.last_total = step, total
        if step == total or now - self.last_line >= self.interval:
            self.last_line = now
            plain_line(self._line(step, total, loss, now - self.start))

    def _line(self, step: int, total: int, loss: float, elapsed: float) -> str:
        share = step / total if total else 1.0
        left = f", about {_clock_text(elapsed / share - elapsed)} left" if 0 < share < 1 and elapsed > 0 else ""
        return f"{self.label}: step {step}/{total} ({share:.0%}), loss {loss:.3f}, {_clock_text(elapsed)} elapsed{left}"


def step_progress(label: str) -> StepProgress:
    """Progress for a loop of known length (training steps): a rich bar on a terminal, plain
    lines at a sane rate elsewhere. Created before the loop; the bar appears at the first step."""
    if not console().is_terminal:
        return PlainSteps(label)
    state: dict[str, Any] = {}

    def update(step: int, total: int, loss: float) -> None:
        if step < 0:  # closing call
            if "bar" in state:
                state.pop("bar").stop()
            return
        if "bar" not in state:
            state["bar"] = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
                                    TimeElapsedColumn(), TimeRemainingColumn(), console=console())
            state["bar"].start()
            state["task"] = state["bar"].add_task(label, total=total, loss=loss)
        state["bar"].update(state["task"], completed=step, loss=loss)
        if step == total:
            state.pop("bar").stop()

    return update


@contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner while a step runs (a start line in a log), then one line saying how long it took."""
    start = time.perf_counter()
    if not console().is_terminal:
        plain_line(f"{message} ...")
        yield
        plain_line(f"{message} done in {time.perf_counter() - start:.1f}s")
        return
    with console().status(message):
        yield
    console().print(f"[dim]{message} done in {time.perf_counter() - start:.1f}s[/dim]")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A progress bar over an iterable (plain lines at a sane rate when stderr is a log)."""
    if not console().is_terminal:
        yield from _track_plain(items, description, total)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def _track_plain(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    start, last, done = time.monotonic(), float("-inf"), 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if done == total or now - last >= PLAIN_INTERVAL:
            last = now
            plain_line(f"{description}: {done}/{total if total is not None else '?'}, {_clock_text(now - start)} elapsed")


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Hide what transformers and huggingface_hub print while a model loads or trains: their
    "Loading weights ... it/s" bars and FutureWarnings are about their internals, not about the
    user's work, and our own status lines already say what is loading.

    Entered by the functions that load or train models, and undone on exit, so importing
    lifelong changes no library's settings for the program that imports it.
    """
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    verbosity, bars_on, hub_bars_off = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|peft|huggingface_hub)\b")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_on:
            hf_logging.enable_progress_bar()
        if not hub_bars_off:
            enable_progress_bars()


class StageClock:
    """Wall seconds per named stage of one piece of work (a sleep: select, synthesis, training,
    gate), so a report shows where the time went instead of a guess."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Closes `stage` at now; the seconds since the previous lap (or the start)."""
        now = time.perf_counter()
        self.laps[stage] = round(self.laps.get(stage, 0.0) + now - self._last, 3)
        self._last = now
        return self.laps[stage]
