"""Helpers shared by the benchmark scripts: where results go, how they are written, and the
machine they came from (a number without its machine is not comparable to anything)."""

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

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def results_dir(study: str) -> Path:
    """A fresh results/<study>/<UTC timestamp>/ folder, so runs never overwrite each other."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = PROJECT_ROOT / "results" / study / stamp
    path.mkdir(parents=True, exist_ok=False)
    return path


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, and paths, as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (fsync cost, hence write throughput, depends on it)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best = ("", "unknown")
    for fields in mounts:
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best[0]):
            best = (fields[1], fields[2])
    return best[1]


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "sqlite": sqlite3.sqlite_version,
        "utc_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on stdout (progress goes to stderr, so stdout stays the summary)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def speed_probe() -> dict[str, float]:
    """Milliseconds for a fixed pure-Python loop and a fixed numpy product. Shared VMs have
    slow spells; a probe recorded beside each measurement shows whether one hit it."""
    import time

    start = time.perf_counter()
    sum(i * i for i in range(1_000_000))
    python_ms = (time.perf_counter() - start) * 1000
    rng = np.random.default_rng(0)
    matrix = rng.random((20_000, 384), dtype=np.float32)
    vector = rng.random(384, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(20):
        matrix @ vector
    numpy_ms = (time.perf_counter() - start) * 1000 / 20
    return {"python_loop_1M_ms": python_ms, "numpy_matvec_20k_ms": numpy_ms}
