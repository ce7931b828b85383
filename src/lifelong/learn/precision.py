"""Which precision trains faster on this CPU, measured rather than assumed.

bf16 autocast halves the bytes a matrix product moves, but whether it is faster depends on the
CPU and its oneDNN kernels: on the 2-core AVX-512 BF16 machine this project runs on, a
(1024 x 576) @ (576 x 1536) product ran at 291 GFLOP/s in fp32 and 133 in bf16 on one day, and
the sleep trainer at 222 tokens/s in fp32 against 147 with autocast. So the default measures
both once per process (about a tenth of a second) and trains in bf16 only where it wins.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.learn.kernel_caches import bound_kernel_caches

MARGIN = 1.1  # bf16 must be this much faster: its rounding is a cost, so a tie goes to fp32


# Instruction sets that decide which precision trains fastest here, recorded with every benchmark
# result (bench/output.machine_info): a number measured with AMX or AVX-512 BF16 is not comparable
# with one measured on AVX2 alone.
MATMUL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and which of MATMUL_FLAGS it has, from /proc/cpuinfo (Linux; empty
    elsewhere). Two-core machines of this project trained at 394 tokens/s in bf16 with AMX and
    at 185 in fp32 with AVX2 alone (README, Results), so a result must say which it ran on."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {"cpu_model": None, "cpu_flags": []}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's; every core of one CPU is alike
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name"), "cpu_flags": [f for f in MATMUL_FLAGS if f in flags]}


def cpu_has_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_description()["cpu_flags"]))


def best_seconds(run: Callable[[], Any], repeats: int = 5) -> float:
    """Best-of-`repeats` seconds of `run()`, after one untimed call that pays kernel selection."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def linear_seconds(dtype: torch.dtype, rows: int, width: int, out: int, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds of one (rows x width) @ (width x out) product in `dtype`."""
    x, w = torch.randn(rows, width, dtype=dtype), torch.randn(out, width, dtype=dtype)
    return best_seconds(lambda: F.linear(x, w), repeats)


@functools.cache
def bf16_is_faster(rows: int = 1024, width: int = 576, out: int = 1536, repeats: int = 5) -> bool:
    """True when a linear layer of the trainer's typical shape (a packed batch through an MLP
    projection of the default model) runs at least MARGIN times faster in bf16 than in fp32."""
    if not cpu_has_bf16():
        return False
    bf16 = linear_seconds(torch.bfloat16, rows, width, out, repeats)
    return bf16 * MARGIN < linear_seconds(torch.float32, rows, width, out, repeats)


def use_bf16(setting: bool | None) -> bool:
    """The trainer's choice: an explicit True/False wins; None measures (bf16_is_faster). The
    bf16 kernel caches are bounded first (learn/kernel_caches.py): the measurement is often the
    process's first bf16 product, after which their size is fixed."""
    bound_kernel_caches()
    return bf16_is_faster() if setting is None else setting
