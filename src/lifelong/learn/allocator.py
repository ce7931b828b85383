"""Give training's freed memory back to the system as it goes, where the C library allows it.

PyTorch's CPU tensors come from the C library's `malloc`. glibc maps an allocation larger than
its threshold on its own and unmaps it when freed, but it raises that threshold each time such
a block is freed (up to 32 MiB), so after the first training step nearly every activation (a
256-token row of a 576-wide model is 0.6 MB) lands in the heap, whose freed holes stay in the
process's resident memory. Measured on a 3-fact sleep (benchmarks/sleep_memory.py): the
training stage peaked at 3.8 GB this way and at 2.9 GB with every allocation over 64 KiB mapped
on its own; 1.7 GB with gradient checkpointing too. Each mapping costs page faults, so training
took 2.4x as long: an option for a machine short of memory, not the default.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
LOW_MEMORY_THRESHOLD = 64 * 1024  # bytes: smaller than any activation row, larger than most bookkeeping
AFTERWARDS_THRESHOLD = 32 * 1024 * 1024  # the ceiling glibc's own adaptive threshold climbs to (64-bit)


def _mallopt(parameter: int, value: int) -> bool:
    """glibc's mallopt, or False where the C library is not glibc (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        function = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return bool(function(parameter, value))


@contextlib.contextmanager
def large_allocations_returned(enabled: bool = True, threshold: int = LOW_MEMORY_THRESHOLD) -> Iterator[bool]:
    """Inside: every allocation over `threshold` bytes is mapped on its own and returned to the
    system when freed. Yields whether that took effect (False off glibc or when not `enabled`).
    Afterwards the threshold is set to glibc's adaptive ceiling, where a long-running process's
    own threshold ends up anyway (glibc cannot be put back to adapting once set)."""
    applied = enabled and _mallopt(M_MMAP_THRESHOLD, threshold)
    try:
        yield applied
    finally:
        if applied:
            _mallopt(M_MMAP_THRESHOLD, AFTERWARDS_THRESHOLD)
