"""The training commands' allocator: tcmalloc preloaded by re-executing once, where the system has it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lifelong.process_allocator import SWITCH, preload_environment, tcmalloc_library

PROBE = ("from lifelong.process_allocator import reexecute_under_tcmalloc, tcmalloc_loaded\n"
         "print('started', flush=True)\n"
         "reexecute_under_tcmalloc()\n"
         "print('tcmalloc' if tcmalloc_loaded() else 'system', flush=True)\n")


def test_the_environment_puts_tcmalloc_first_and_is_none_when_there_is_nothing_to_do() -> None:
    library = "libtcmalloc_minimal.so.4"
    assert preload_environment({"PATH": "/bin"}, library, "linux") == {"PATH": "/bin", "LD_PRELOAD": library}
    assert preload_environment({"LD_PRELOAD": "libother.so"}, library, "linux")["LD_PRELOAD"] == f"{library} libother.so"
    assert preload_environment({"LD_PRELOAD": library}, library, "linux") is None  # preloaded: no second re-execution
    assert preload_environment({}, None, "linux") is None  # the system has none
    assert preload_environment({}, library, "darwin") is None  # no LD_PRELOAD there
    assert preload_environment({SWITCH: "system"}, library, "linux") is None


@pytest.mark.skipif(tcmalloc_library() is None or not sys.platform.startswith("linux"),
                    reason="tcmalloc is not installed here (Debian: apt install libtcmalloc-minimal4)")
def test_a_process_reexecutes_once_under_tcmalloc_unless_switched_off() -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SWITCH)}
    ran = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["started", "started", "tcmalloc"]  # once before, once after the re-execution
    kept = subprocess.run([sys.executable, "-c", PROBE], env={**environment, SWITCH: "system"},
                          capture_output=True, text=True, check=True)
    assert kept.stdout.split() == ["started", "system"]


@pytest.mark.skipif(tcmalloc_library() is None or not sys.platform.startswith("linux"),
                    reason="tcmalloc is not installed here (Debian: apt install libtcmalloc-minimal4)")
@pytest.mark.parametrize(("command", "expected"), [("sleep", ["started", "started", "tcmalloc"]),
                                                   ("recall", ["started", "system"])])
def test_the_program_reexecutes_for_the_commands_that_train_only(command: str, expected: list[str]) -> None:
    program = ("import sys\n"
               "from lifelong.process_allocator import tcmalloc_loaded\n"
               "from lifelong.cli import entry_point\n"
               f"sys.argv = ['lifelong', {command!r}, '--help']\n"
               "print('@started', flush=True)\n"
               "try:\n"
               "    entry_point()\n"
               "except SystemExit:\n"
               "    pass\n"
               "print('@tcmalloc' if tcmalloc_loaded() else '@system', flush=True)\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SWITCH)}
    ran = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True, check=True)
    lines = [line[1:] for line in ran.stdout.splitlines() if line.startswith("@")]  # the help text between them aside
    assert lines == expected


RELEASE_PROBE = """
import sys
from lifelong.bench.measure import resident_bytes
from lifelong.learn.allocator import release_free_memory
blocks = [bytearray(100_000) for _ in range(2_000)]  # 200 MB in blocks the heap serves, zero-filled: resident
del blocks[:-1]  # the last one stays, so the freed ones are holes below it, not a heap top to trim
before = resident_bytes()
allocator = release_free_memory()
print(allocator, (before - resident_bytes()) / 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and the C library's allocator")
@pytest.mark.parametrize("preload", [False, True])
def test_releasing_free_memory_gives_freed_blocks_back_to_the_system(preload: bool) -> None:
    library = tcmalloc_library()
    if preload and library is None:
        pytest.skip("tcmalloc is not installed here (Debian: apt install libtcmalloc-minimal4)")
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SWITCH)}
    if preload:
        environment["LD_PRELOAD"] = library
    ran = subprocess.run([sys.executable, "-c", RELEASE_PROBE], env=environment, capture_output=True, text=True, check=True)
    allocator, released_mib = ran.stdout.split()
    assert allocator == ("tcmalloc" if preload else "glibc")
    assert float(released_mib) > 100  # of the 190 MB freed
