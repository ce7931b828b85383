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

import torch
import torch.nn.functional as F

MARGIN = 1.1  # bf16 must be this much faster: its rounding is a cost, so a tie goes to fp32


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def linear_seconds(dtype: torch.dtype, rows: int, width: int, out: int, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds of one (rows x width) @ (width x out) product in `dtype`."""
    x, w = torch.randn(rows, width, dtype=dtype), torch.randn(out, width, dtype=dtype)
    F.linear(x, w)  # first call pays kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        F.linear(x, w)
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def bf16_is_faster(rows: int = 1024, width: int = 576, out: int = 1536, repeats: int = 5) -> bool:
    """True when a linear layer of the trainer's typical shape (a packed batch through an MLP
    projection of the default model) runs at least MARGIN times faster in bf16 than in fp32."""
    if not cpu_has_bf16():
        return False
    bf16 = linear_seconds(torch.bfloat16, rows, width, out, repeats)
    return bf16 * MARGIN < linear_seconds(torch.float32, rows, width, out, repeats)


def use_bf16(setting: bool | None) -> bool:
    """The trainer's choice: an explicit True/False wins; None measures (bf16_is_faster)."""
    return bf16_is_faster() if setting is None else setting
