"""Helpers for the scripts in benchmarks/: the same results folders, JSON and machine record as
`lifelong bench`, plus the filesystem and speed probes the latency study records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lifelong.bench import output
from lifelong.bench.output import machine_info, print_table, write_json  # noqa: F401 - shared with lifelong bench

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def results_dir(study: str) -> Path:
    """A fresh results/<study>/<UTC timestamp>/ folder, so runs never overwrite each other."""
    return output.results_dir(PROJECT_ROOT / "results", study)


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
