"""Bound the caches of bf16 matrix-product kernels, which otherwise grow with every new shape.

bf16 products on the CPU run through oneDNN (called by PyTorch through ideep), which builds a
kernel for each shape it meets and keeps it in two caches of up to 1,024 entries each. A sleep's
packed training rows give nearly every step a row count of its own, so the process grew by
10-20 MB a step and never gave it back: a 20-memory topic's training (TOFU, 129 examples,
4 epochs, 68 steps) ended at 2,178-2,207 MiB against 1,604 with both caches held to 128
entries, in 89.9 s against 92.8 and 100.3 (scratch, tcmalloc; README, "Peak memory in bf16").
A single step needs fewer kernels than that (its 30 layers share shapes), so nothing is rebuilt
within a step. Rounding the row counts up to a few fixed sizes bounded memory too, but the
padding cost 17-30% more training time.

Both libraries read their capacity from the environment when they first build a kernel, so
`bound_kernel_caches` must run before the process's first bf16 product: `train_module` calls it
on entry, and the commands that re-execute under tcmalloc set it for the new process. A value
the user set is kept.
"""

from __future__ import annotations

import os

KERNEL_CACHE_ENTRIES = 128
CACHE_SETTINGS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")  # oneDNN's, and ideep's


def bounded_cache_environment(environ: dict[str, str]) -> dict[str, str]:
    """`environ` with both capacities set, where the user has not set them."""
    return {**{name: str(KERNEL_CACHE_ENTRIES) for name in CACHE_SETTINGS}, **environ}


def bound_kernel_caches() -> None:
    """Set both capacities in this process's environment, unless set; effective only before the
    first bf16 product (the libraries read them once)."""
    for name in CACHE_SETTINGS:
        os.environ.setdefault(name, str(KERNEL_CACHE_ENTRIES))
