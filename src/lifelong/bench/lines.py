"""Progress of a benchmark's sleeps and fine-tunes as dim console lines (every study and the
naive baselines print the same way)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.markup import escape

from lifelong.progress import console


def report_to_console(label: str) -> Callable[[str], None]:
    return lambda message: console().print(f"  [dim]{escape(label)}: {escape(message)}[/dim]")


def training_progress(label: str) -> Callable[[int, int, float], None]:
    last = [0.0]

    def report(step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if step == total or now - last[0] > 30:
            last[0] = now
            console().print(f"  [dim]{label}: step {step}/{total}, loss {loss:.3f}[/dim]")

    return report
