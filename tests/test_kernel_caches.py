"""bf16 kernel caches are bounded before a process's first bf16 product: products of ever new
shapes (a sleep's packed rows) then stop adding to resident memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lifelong.learn.kernel_caches import CACHE_SETTINGS, KERNEL_CACHE_ENTRIES, bounded_cache_environment
from lifelong.learn.precision import cpu_has_bf16

GROWTH = """
import json, sys, torch
from lifelong.bench.measure import resident_bytes
from lifelong.learn.precision import use_bf16
if sys.argv[1] == "bounded":
    use_bf16(True)  # what a sleep calls before training
weight = torch.randn(1536, 576)
def step(rows):
    x = torch.randn(rows, 576, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = torch.nn.functional.linear(x, weight)
    y.float().sum().backward()
for rows in range(100, 400, 2):  # 150 row counts: the bounded caches fill up
    step(rows)
before = resident_bytes()
for rows in range(400, 700, 2):  # 150 more, never seen before
    step(rows)
print(json.dumps((resident_bytes() - before) / 2**20))
"""


def test_the_environment_gets_both_capacities_and_keeps_a_users_own() -> None:
    environment = bounded_cache_environment({"PATH": "/bin", "LRU_CACHE_CAPACITY": "7"})
    assert environment["LRU_CACHE_CAPACITY"] == "7" and environment["PATH"] == "/bin"
    assert environment["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE_ENTRIES)


@pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 products run through oneDNN's bf16 kernels only on a CPU with bf16")
def test_bf16_products_of_new_shapes_stop_growing_memory_once_the_caches_are_bounded() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in CACHE_SETTINGS}

    def growth(mode: str) -> float:
        run = subprocess.run([sys.executable, "-c", GROWTH, mode], capture_output=True, text=True, check=True, env=clean)
        return json.loads(run.stdout.strip().splitlines()[-1])

    unbounded, bounded = growth("default"), growth("bounded")
    assert unbounded > 100  # MiB: each new shape's kernels kept (about 1.5 MB each here)
    assert bounded < unbounded / 4  # full bounded caches drop old kernels for new ones
