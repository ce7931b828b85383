"""Killing a real sleep mid-training leaves the active version and the memory intact, and the
next sleep starts cleanly (the default model, in a subprocess killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.real_model

FACTS = [
    "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik.",
    "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
]


def _lifelong(*args: str, mind: Path) -> list[str]:
    return [sys.executable, "-m", "lifelong.cli", *args, "--mind", str(mind)]


def _wait_for(process: subprocess.Popen, log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"sleep ended before '{text}': {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"'{text}' not seen in {timeout}s: {log.read_text(errors='replace')[-2000:]}")


def test_killing_a_real_sleep_mid_training_loses_nothing(tmp_path: Path) -> None:
    mind = tmp_path / "mind"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for fact in FACTS:
        subprocess.run(_lifelong("learn", "-", mind=mind), input=fact.encode(), check=True, env=env, capture_output=True)
    db_before = sqlite3.connect(mind / "memory.db").execute("select id, text from memories order by id").fetchall()

    log = tmp_path / "sleep.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(_lifelong("sleep", "--epochs", "200", mind=mind), stdout=handle, stderr=handle, env=env)
    try:
        _wait_for(process, log, "training a LoRA module", timeout=600)
        time.sleep(8)  # well inside the 200 epochs
        assert process.poll() is None, "sleep finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert not (mind / "active").exists() or (mind / "active").read_text().strip() == "base"
    connection = sqlite3.connect(mind / "memory.db")
    assert connection.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert connection.execute("select id, text from memories order by id").fetchall() == db_before
    connection.close()

    done = subprocess.run(_lifelong("sleep", "--epochs", "1", "--json", mind=mind), env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 10), done.stderr[-2000:]  # 10 = the gate refused the one-epoch module
    assert '"id": "v1"' in done.stdout
    assert not list((mind / "versions").glob(".building-*"))
    versions = subprocess.run(_lifelong("versions", "--json", mind=mind), env=env, capture_output=True, text=True, check=True)
    assert '"v1"' in versions.stdout
