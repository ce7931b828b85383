"""Give training's freed memory back to the system as it goes, where the C library allows it.

PyTorch's CPU tensors come from the C library's `malloc`. glibc maps an allocation larger than
its threshold on its own and unmaps it when freed, but it raises that threshold each time such
a block is freed (up to 32 MiB), so after the first training step nearly every activation (a
256-token row of a 576-wide model is 0.6 MB) lands in the heap, whose freed holes stay in the
process's resident memory. Measured on a 3-fact sleep (benchmarks/sleep_memory.py): the
training stage peaked at 3.8 GB this way and at 2.9 GB with every allocation over 64 KiB mapped
on its own; 1.7 GB with gradient checkpointing too. Each mapping costs page faults, so training
took 2.4x as long: an option for a machine short of memory, not the default. A size-class
allocator preloaded instead (tcmalloc, jemalloc; README) saves most of it at no time cost.

Between a sleep's stages, `release_free_memory` hands what the allocator holds free back to the
system (tcmalloc's free spans, or glibc's free heap pages), so training's peak starts from what
is live rather than from what synthesis left behind.

The setting is process-wide (every thread's allocations) and glibc cannot be put back to
adapting once it is set, so inside the context the threshold is 64 KiB and afterwards it stays
at glibc's ceiling, 32 MiB, which also fixes the heap's trim threshold. Nested or concurrent
users (two tenants' sleeps in one server) are counted: the last one out sets the ceiling.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
LOW_MEMORY_THRESHOLD = 64 * 1024  # bytes: smaller than any activation row, larger than most bookkeeping
AFTERWARDS_THRESHOLD = 32 * 1024 * 1024  # the ceiling of glibc's own adaptive threshold (64-bit)

_lock = threading.Lock()
_inside = 0  # contexts that asked for the low threshold and have not left yet


@functools.cache
def _mallopt_function() -> Callable[[int, int], int] | None:
    """glibc's mallopt from the C library this process already runs on, or None (musl, macOS,
    Windows). The loaded library is asked first: finding it by name spawns ldconfig."""
    function = _library_function(None) or _library_function(ctypes.util.find_library("c"))
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int]
        function.restype = ctypes.c_int
    return function


def _library_function(name: str | None) -> Any:
    try:
        return ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return None


def mallopt(parameter: int, value: int) -> bool:
    """Set one of glibc's malloc parameters; False where there is no glibc or it refused."""
    function = _mallopt_function()
    return function is not None and bool(function(parameter, value))


@contextlib.contextmanager
def large_allocations_returned(enabled: bool = True, threshold: int = LOW_MEMORY_THRESHOLD) -> Iterator[bool]:
    """Inside: every allocation over `threshold` bytes is mapped on its own and returned to the
    system when freed. Yields whether that took effect (False off glibc or when not `enabled`)."""
    global _inside
    if not enabled:
        yield False
        return
    with _lock:
        applied = mallopt(M_MMAP_THRESHOLD, threshold)
        _inside += applied
    try:
        yield applied
    finally:
        if applied:
            with _lock:
                _inside -= 1
                if _inside == 0:
                    mallopt(M_MMAP_THRESHOLD, AFTERWARDS_THRESHOLD)


def release_free_memory() -> str | None:
    """Give the allocator's free memory back to the system now; returns which allocator did
    ("tcmalloc" or "glibc"), or None where neither is there. tcmalloc keeps freed spans for
    reuse and glibc keeps freed holes in its heap, both resident; after a stage that allocated
    differently shaped tensors (synthesis's generation caches before training's activations)
    they only add to the next stage's peak. A few milliseconds; pages are faulted back in when
    used again."""
    process = ctypes.CDLL(None)
    for name, allocator in (("MallocExtension_ReleaseFreeMemory", "tcmalloc"), ("malloc_trim", "glibc")):
        function = getattr(process, name, None)
        if function is None:
            continue
        if allocator == "glibc":
            function.argtypes = [ctypes.c_size_t]
            function(0)
        else:
            function()
        return allocator
    return None
