"""SIGKILL inside each stage of the sleep recipe, commit included (after the version folder is
written, before the active pointer moves): the memories, the active version and the next
sleep are intact every time. The sleep runs in a subprocess that kills itself on entering
the stage, so each stage is hit exactly, not by timing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lifelong.versions import Verdict
from lifelong import consolidate
from lifelong.consolidate import SleepConfig
from lifelong.learn.trainer import TrainConfig
from lifelong.mind import Mind

FACTS = ["The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964.",
         "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011."]

# stage -> (module, attribute) the subprocess replaces with a self-kill
STAGES = {
    "select": ("lifelong.consolidate", "valid_library"),
    "build training data": ("lifelong.consolidate", "synthesise"),
    "train": ("lifelong.consolidate", "train_module"),
    "measure": ("lifelong.consolidate", "measure_candidate"),
    "judge": ("lifelong.consolidate", "judge"),
    "commit: writing the version": ("lifelong.consolidate", "trained_texts"),
    "commit: version written, pointer not moved": ("lifelong.versions.registry.VersionRegistry", "activate"),
}

SCRIPT = textwrap.dedent("""
    import importlib, os, signal, sys
    from lifelong import consolidate
    from lifelong.consolidate import SleepConfig
    from lifelong.learn.trainer import TrainConfig
    from lifelong.memory.embedder import MiniLMEmbedder
    from lifelong.mind import Mind
    from lifelong.model.tiny import build_tiny_model

    path, target, attribute = sys.argv[1:4]
    module_name, _, class_name = target.rpartition(".") if target.endswith("VersionRegistry") else (target, "", "")
    owner = getattr(importlib.import_module(module_name), class_name) if class_name else importlib.import_module(target)
    from lifelong.versions import Verdict
    consolidate.judge = lambda metrics, policy: Verdict(True, [])  # a tiny model never passes the real gate
    assert hasattr(owner, attribute), f"{target}.{attribute} no longer exists: update STAGES"
    setattr(owner, attribute, lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL))
    with Mind.open(path, embedder=MiniLMEmbedder(), language_model=build_tiny_model()) as mind:
        mind.sleep(SleepConfig(train=TrainConfig(rank=4, epochs=1, bf16=False), distill=False))
    sys.exit(3)  # never reached: the stage kills the process
""")


def _rows(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path / "memory.db")
    try:
        assert connection.execute("pragma integrity_check").fetchone()[0] == "ok"
        return connection.execute("select id, text, valid_to from memories order by id").fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_kill_inside_any_stage_leaves_the_mind_intact(stage: str, tmp_path: Path, tiny_lm, embedder,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mind"
    with Mind.init(path, model=tiny_lm.name, embedder=embedder, language_model=tiny_lm) as mind:
        for fact in FACTS:
            mind.learn(fact)
    before = _rows(path)

    target, attribute = STAGES[stage]
    killed = subprocess.run([sys.executable, "-c", SCRIPT, str(path), target, attribute], capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -9, f"{stage}: exit {killed.returncode}: {killed.stderr[-2000:]}"

    assert _rows(path) == before
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    with Mind.open(path, embedder=embedder, language_model=tiny_lm) as mind:
        assert mind.versions.active_id() == "base"  # the pointer never moved to a half-made version
        result = mind.sleep(SleepConfig(train=TrainConfig(rank=4, epochs=1, bf16=False), distill=False))
        assert result.activated and mind.versions.active_id() == result.manifest.id
        assert sorted(result.manifest.memory_ids) == [row[0] for row in before]
        assert not list((path / "versions").glob(".building-*"))
        assert mind.ask("Who designed the Korvath Bridge?", max_new_tokens=4).used_memory
