"""Run the commands that train under tcmalloc where the machine has it.

PyTorch's CPU tensors come from the process's `malloc`. Under glibc's, a training step's
activations leave freed holes in the heap that stay resident: a 3-fact sleep's training stage
peaked at 4.3 GB with glibc and 2.9 GB with tcmalloc, in the same training time (fp32,
benchmarks/sleep_memory.py, README "Cost"); with one packed row per pass, 1.6 GB. PyTorch's own
CPU launcher (`torch.backends.xeon.run_cpu --enable-tcmalloc`) swaps the allocator the same way:
the library is preloaded (`LD_PRELOAD`), since an allocator cannot be changed once a process
has allocated, so the command re-executes itself once, before it imports or reads anything.

No package index ships tcmalloc, so it comes from the system (Debian: `apt install
libtcmalloc-minimal4`, which `scripts/setup.sh` tries); without it, or on systems without
`LD_PRELOAD` (macOS, Windows), commands run on the C library's allocator as before. Set
`LIFELONG_ALLOCATOR=system` to keep the C library's allocator (for comparisons).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping

SWITCH = "LIFELONG_ALLOCATOR"  # "system": no preloading
LIBRARY_NAMES = ("tcmalloc_minimal", "tcmalloc")  # the minimal build first: no heap profiler, smaller


def tcmalloc_library() -> str | None:
    """The shared library's name as the dynamic linker finds it (e.g. libtcmalloc_minimal.so.4),
    or None where the system has none."""
    for name in LIBRARY_NAMES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def preload_environment(environ: Mapping[str, str], library: str | None, platform: str = sys.platform) -> dict[str, str] | None:
    """The environment to re-execute with, tcmalloc first in `LD_PRELOAD`; None when there is
    nothing to do: no library, not Linux, switched off, or already preloaded (which is also
    what stops a second re-execution)."""
    if library is None or not platform.startswith("linux") or environ.get(SWITCH, "").lower() == "system":
        return None
    preloads = environ.get("LD_PRELOAD", "")
    if "tcmalloc" in preloads:
        return None
    return {**environ, "LD_PRELOAD": f"{library} {preloads}".strip()}


def tcmalloc_loaded() -> bool:
    """Whether this process runs with tcmalloc mapped (Linux; False elsewhere)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            return any("tcmalloc" in line for line in maps)
    except OSError:
        return False


def reexecute_under_tcmalloc() -> None:
    """Replace this process with the same command under tcmalloc, if the machine has it and it
    is not loaded yet; otherwise return and let the command run as it is. Call it before the
    command reads standard input or writes anything: the new process starts from the top."""
    from lifelong.learn.kernel_caches import bounded_cache_environment

    environment = preload_environment(os.environ, tcmalloc_library())
    if environment is None or tcmalloc_loaded():
        return
    environment = bounded_cache_environment(environment)  # the new process's bf16 kernels, from its start
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environment)
