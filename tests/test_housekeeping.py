"""Housekeeping on a tiny model: prune keeps what the active version is built from, backup is
whole while a writer runs, restore gives back the same mind, and every refusal changes nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lifelong import Mind
from lifelong.backup import backup, restore
from lifelong.consolidate import SleepConfig
from lifelong.evaluate.gate import GatePolicy
from lifelong.versions import Verdict
from lifelong.disk_usage import measure, tree_bytes
from lifelong.errors import BusyError, MindError
from lifelong.learn.trainer import TrainConfig
from lifelong.versions.prune import prune

FACTS = [
    "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik.",
    "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
    "The Qessa lighthouse keeper is called Mirela Stann.",
]
QUESTIONS = ["Who founded the Vellmar Observatory?", "Who sailed across the Lake of Qessa?"]
OPEN = GatePolicy(min_retention=0.0, max_kl=1e9, max_old_fact_drop=1.0)
LOUD = SleepConfig(strategy="naive", train=TrainConfig(rank=8, epochs=3, learning_rate=1e-2, bf16=False), gate=OPEN, distill=False)


def _answers(mind: Mind) -> list[tuple[str, list[int]]]:
    answers = [mind.ask(q, max_new_tokens=10) for q in QUESTIONS] + [mind.ask(q, use_memory=False, max_new_tokens=10) for q in QUESTIONS]
    return [(a.text, [m.id for m in a.citations]) for a in answers]


@pytest.fixture
def grown(mind: Mind, monkeypatch: pytest.MonkeyPatch) -> Mind:
    """v1 module -> v2 merge -> v3 module (active); v4 a refused candidate on v3; and a folder
    a killed sleep left behind. Only v4 and the leftover are outside the active lineage."""
    from lifelong import consolidate

    passing = {"value": True}
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(passing["value"], [] if passing["value"] else ["refused"]))
    mind.learn(FACTS[0])
    assert mind.sleep(LOUD).activated
    assert mind.merge(policy=OPEN).activated
    mind.learn(FACTS[1])
    assert mind.sleep(LOUD).activated
    passing["value"] = False
    mind.learn(FACTS[2])
    refused = mind.sleep(LOUD)
    assert not refused.activated and refused.manifest.id == "v4"
    (mind.versions.root / ".building-crashed" / "adapter").mkdir(parents=True)
    (mind.versions.root / ".building-crashed" / "adapter" / "weights").write_bytes(b"x" * 1000)
    assert mind.versions.active_id() == "v3"
    return mind


def test_prune_keeps_the_active_lineage_and_its_answers(grown: Mind, embedder, tiny_lm) -> None:
    before = _answers(grown)
    usage = measure(grown.path)
    v4 = next(v for v in usage.versions if v.id == "v4")
    assert usage.prunable_bytes == v4.bytes + 1000

    plan = prune(grown.path, dry_run=True)
    assert [v.id for v in plan.remove] == ["v4"] and (grown.versions.root / "v4").is_dir()

    plan = prune(grown.path)
    assert [v.id for v in plan.keep] == ["v1", "v2", "v3"] and [v.id for v in plan.remove] == ["v4"]
    assert plan.frees_bytes == v4.bytes + 1000
    assert [m.id for m in grown.versions.list()] == ["v1", "v2", "v3"]
    assert sorted(p.name for p in grown.versions.root.iterdir() if p.name != ".lock") == ["v1", "v2", "v3"]
    after = measure(grown.path)
    assert after.leftover_bytes == 0 and after.prunable_bytes == 0
    assert sum(v.bytes for v in after.versions) == sum(v.bytes for v in usage.versions) - v4.bytes
    assert any(json.loads(line)["event"] == "pruned" for line in grown.versions.audit_log.read_text().splitlines())
    with Mind.open(grown.path, embedder=embedder, language_model=tiny_lm) as reopened:  # nothing cached from before
        assert reopened.versions.active_id() == "v3" and _answers(reopened) == before
        assert reopened.versions.new_id() == "v5"  # a pruned id is never handed out again


def test_prune_refuses_while_a_sleep_holds_the_lock(grown: Mind, run_cli) -> None:
    listing = sorted(p.name for p in grown.versions.root.iterdir())
    with grown.versions.exclusive("sleep"):
        with pytest.raises(BusyError):
            prune(grown.path)
        code, out, err = run_cli("versions", "prune", "--mind", str(grown.path))
    assert code == 6 and "another sleep" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in grown.versions.root.iterdir()) == listing


def test_prune_and_du_on_the_command_line(grown: Mind, run_cli) -> None:
    path = str(grown.path)
    code, out, _ = run_cli("du", "--mind", path, "--json")
    usage = json.loads(out)
    assert code == 0 and usage["active"] == "v3" and usage["total_bytes"] == tree_bytes(grown.path)
    assert [v["id"] for v in usage["versions"] if not v["in_lineage"]] == ["v4"]
    code, out, _ = run_cli("du", "--mind", path)
    assert code == 0 and "memory.db" in out and "total" in out and "would free" in out
    code, out, _ = run_cli("versions", "prune", "--dry-run", "--mind", path)
    assert code == 0 and "would delete" in out and (grown.versions.root / "v4").is_dir()
    code, out, _ = run_cli("versions", "prune", "--mind", path, "--json")
    result = json.loads(out)
    assert code == 0 and result["remove"] == ["v4"] and result["frees_bytes"] == usage["prunable_bytes"]
    code, out, _ = run_cli("versions", "--mind", path, "--json")
    assert code == 0 and [v["id"] for v in json.loads(out)["versions"]] == ["v1", "v2", "v3"]


def test_restore_gives_the_same_answers_and_memories(grown: Mind, tmp_path: Path, embedder, tiny_lm, run_cli) -> None:
    before = _answers(grown)
    memories = [m.to_dict() for m in grown.memories()]
    code, out, _ = run_cli("backup", str(tmp_path / "backup"), "--mind", str(grown.path))
    assert code == 0 and "3 memories" in out and "active v3" in out
    code, out, _ = run_cli("restore", str(tmp_path / "backup"), "--mind", str(tmp_path / "restored"))
    assert code == 0 and "restored 3 memories" in out
    with Mind.open(tmp_path / "restored", embedder=embedder, language_model=tiny_lm) as restored:
        assert [m.to_dict() for m in restored.memories()] == memories
        assert restored.versions.active_id() == "v3" and [m.id for m in restored.versions.list()] == ["v1", "v2", "v3", "v4"]
        assert _answers(restored) == before
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folders left


def test_forced_restore_keeps_the_replaced_mind(mind: Mind, tmp_path: Path, embedder, tiny_lm) -> None:
    mind.learn(FACTS[0])
    backup(mind.path, tmp_path / "backup")
    mind.learn(FACTS[1])
    with pytest.raises(MindError, match="is not empty.*--force"):
        restore(tmp_path / "backup", mind.path)
    assert len(mind.memories()) == 2
    mind.close()
    report = restore(tmp_path / "backup", mind.path, force=True)
    assert report.replaced is not None and report.replaced.parent == mind.path.parent
    with Mind.open(mind.path, embedder=embedder, language_model=tiny_lm) as restored:
        assert [m.text for m in restored.memories()] == [FACTS[0]]
    with Mind.open(report.replaced, embedder=embedder, language_model=tiny_lm) as kept:
        assert [m.text for m in kept.memories()] == FACTS[:2]


def test_backup_while_a_writer_adds_memories_is_whole(mind: Mind, tmp_path: Path, embedder, tiny_lm) -> None:
    """Another process writes batches of 20 memories as fast as it can; every backup holds
    whole batches only, passes the integrity checks, and opens as a working mind."""
    mind.learn(FACTS[0])
    mind.close()
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pathlib import Path
        from lifelong.memory.records import NewMemory
        from lifelong.memory.store import MemoryStore
        store = MemoryStore.open(Path({str(mind.path / 'memory.db')!r}), "all-MiniLM-L6-v2", 384)
        vectors = np.full((20, 384), 384 ** -0.5, dtype=np.float32)
        print("ready", flush=True)
        for batch in range(100000):
            store.add([NewMemory(f"batch {{batch}} item {{i}} of the writer") for i in range(20)], vectors)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert writer.stdout.readline().strip() == "ready"
        copies = []
        for n in range(3):
            time.sleep(0.5)
            copies.append(backup(mind.path, tmp_path / f"backup-{n}"))
    finally:
        writer.kill()
        writer.wait()
    counts = [c.memories for c in copies]
    assert counts[-1] > 1 and all((c - 1) % 20 == 0 for c in counts)
    for n, copy in enumerate(copies):
        with sqlite3.connect(copy.target / "memory.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")  # index agrees with table
        restore(copy.target, tmp_path / f"restored-{n}")
        with Mind.open(tmp_path / f"restored-{n}", embedder=embedder, language_model=tiny_lm) as restored:
            assert len(restored.memories()) == copy.memories
            assert restored.recall("Vellmar Observatory", k=1)[0].memory.text == FACTS[0]


def test_refusals_are_one_line_and_change_nothing(mind: Mind, tmp_path: Path, run_cli) -> None:
    mind.learn(FACTS[0])
    path = str(mind.path)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")

    def one_line(err: str, fragment: str) -> None:
        assert fragment in err and len(err.strip().splitlines()) == 1, err

    code, _, err = run_cli("backup", str(occupied), "--mind", path)
    assert code == 4
    one_line(err, "not empty")
    code, _, err = run_cli("backup", str(mind.path / "inside"), "--mind", path)
    assert code == 4
    one_line(err, "inside the mind")
    code, _, err = run_cli("backup", str(tmp_path / "b"), "--mind", str(tmp_path / "nowhere"))
    assert code == 4 and not (tmp_path / "b").exists()
    one_line(err, "no mind at")
    code, _, err = run_cli("restore", str(occupied), "--mind", str(tmp_path / "new"))
    assert code == 4 and not (tmp_path / "new").exists()
    one_line(err, "no mind at")
    run_cli("backup", str(tmp_path / "b"), "--mind", path)
    code, _, err = run_cli("restore", str(tmp_path / "b"), "--mind", str(occupied))
    assert code == 4
    one_line(err, "pass --force")
    code, _, err = run_cli("du", "--mind", str(tmp_path / "nowhere"))
    assert code == 4
    one_line(err, "no mind at")
    assert (occupied / "notes.txt").read_text() == "mine" and sorted(p.name for p in occupied.iterdir()) == ["notes.txt"]
    assert [m.text for m in mind.memories()] == [FACTS[0]]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
