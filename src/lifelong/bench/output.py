"""Where results go and what they record: a number without its machine, data and seed is
not comparable to anything."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def results_dir(root: Path, study: str, started: datetime | None = None) -> Path:
    """A fresh <root>/<study>/<UTC start time>/ folder, so runs never overwrite each other."""
    stamp = (started or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    path = root / study / stamp
    suffix = 1
    while path.exists():  # two studies of one run can start within the same second
        path = root / study / f"{stamp}-{suffix}"
        suffix += 1
    path.mkdir(parents=True)
    return path


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, and paths, as plain JSON values."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def as_json(data: Any) -> Any:
    """`data` as it reads back from a JSON file (tuples become lists, numpy scalars floats)."""
    return json.loads(json.dumps(data, default=_jsonable))


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a reader never sees half a file


def machine_info(code: str | None = None) -> dict[str, Any]:
    """What the numbers were measured on; `code` is the version the process started from."""
    import numpy as np
    import torch

    from lifelong.learn.precision import cpu_description
    from lifelong.process_allocator import tcmalloc_loaded

    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        **cpu_description(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sqlite": sqlite3.sqlite_version,
        "allocator": "tcmalloc" if tcmalloc_loaded() else "system",  # moves peak memory by a third (process_allocator.py)
        "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "code": code or source_version(),
    }


def source_version() -> str:
    """The git commit the code ran from (with "+changes" if the tree was dirty), or the
    package version outside a checkout: a result is only reproducible from its code."""
    import subprocess

    from lifelong import __version__

    root = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"lifelong {__version__}"
    return commit + ("+changes" if dirty else "")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout (progress goes to stderr, so stdout stays the summary)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    Console().print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def paired_bars(ax: Any, labels: Sequence[str], pair: dict[str, Sequence[float]], title: str, label_size: int = 8) -> None:
    """Two metrics side by side per label on one matplotlib axis, each bar labelled with its value."""
    for offset, (key, values) in zip((-0.2, 0.2), pair.items(), strict=True):
        bars = ax.bar([i + offset for i in range(len(labels))], list(values), 0.4, label=key)
        ax.bar_label(bars, fmt="%.2f", fontsize=label_size)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
