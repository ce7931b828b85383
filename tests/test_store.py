"""The memory stores: transactional writes, validity intervals, refusal of foreign or newer files.

Tests taking the `store` fixture run against both backends: the SQLite file and a real
PostgreSQL + pgvector server started by the test session."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lifelong.errors import MindError, NotFoundError
from lifelong.memory.records import NewMemory
from lifelong.memory.backends import Store, open_store
from lifelong.memory.store import SCHEMA_VERSION, MemoryStore

DIM = 4


def _vectors(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        opened = MemoryStore.open(tmp_path / "memory.db", "test-embedder", DIM)
    else:
        opened = open_store(request.getfixturevalue("postgres_url"), "test-embedder", DIM,
                            schema=request.getfixturevalue("postgres_schema"))
    yield opened
    opened.close()


def _add(store: Store, *items: NewMemory, supersedes=()):
    return store.add(list(items), _vectors(len(items)), supersedes=supersedes)


def test_identical_current_memory_is_not_duplicated(store: Store) -> None:
    first = _add(store, NewMemory("Zorb has three moons."))[0]
    again = _add(store, NewMemory("Zorb has three moons.  "))[0]
    assert again.id == first.id and not again.created
    assert store.count() == 1


def test_same_key_supersedes_and_keeps_history(store: Store) -> None:
    old = _add(store, NewMemory("Zorb's capital is Plix.", key="zorb capital"))[0]
    new = _add(store, NewMemory("Zorb's capital is Quent.", key="zorb capital"))[0]
    assert new.superseded == (old.id,)
    before, after = store.get(old.id), store.get(new.id)
    assert not before.current and before.superseded_by == new.id and before.valid_to == after.valid_from
    assert after.current
    assert [m.id for m in store.list(include_superseded=False)] == [new.id]
    assert len(store.list()) == 2  # history survives


def test_lower_trust_cannot_supersede_higher_trust(store: Store) -> None:
    trusted = _add(store, NewMemory("Zorb's capital is Plix.", trust="trusted", key="zorb capital"))[0]
    rumour = _add(store, NewMemory("Zorb's capital is Quent.", trust="untrusted", key="zorb capital"))[0]
    assert rumour.conflicts == (trusted.id,) and rumour.superseded == ()
    assert store.get(trusted.id).current


def test_a_failing_batch_writes_nothing(store: Store) -> None:
    _add(store, NewMemory("kept"))
    with pytest.raises(NotFoundError, match="--supersedes 999"):
        _add(store, NewMemory("a"), NewMemory("b"), supersedes=[999])
    with pytest.raises(ValueError):
        store.add([NewMemory("c"), NewMemory("d")], _vectors(1))
    assert [m.text for m in store.list()] == ["kept"]
    assert store.keyword_search(["a", "b", "c"], 10) == []


def test_delete_removes_from_keyword_index_and_ids_are_never_reused(store: Store) -> None:
    first = _add(store, NewMemory("Zorb has three moons."))[0]
    assert store.keyword_search(["moons"], 5) and store.keyword_search(["moons"], 5)[0][0] == first.id
    store.delete(first.id)
    assert store.keyword_search(["moons"], 5) == []
    with pytest.raises(NotFoundError):
        store.get(first.id)
    second = _add(store, NewMemory("Plix is the capital."))[0]
    assert second.id > first.id


def test_writes_bump_the_generation_readers_watch(store: Store) -> None:
    before = store.generation()
    _add(store, NewMemory("x"))
    assert store.generation() == before + 1


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    MemoryStore.open(path, "test-embedder", DIM).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(MindError, match="newer than this lifelong understands"):
        MemoryStore.open(path, "test-embedder", DIM)
    assert path.read_bytes() == before


def test_corrupted_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    path.write_bytes(b"this is not a database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(MindError, match="corrupted or not a SQLite database"):
        MemoryStore.open(path, "test-embedder", DIM)
    assert path.read_bytes() == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(MindError, match="not a lifelong memory store"):
        MemoryStore.open(path, "test-embedder", DIM)


def test_other_embedder_is_refused(tmp_path: Path) -> None:
    MemoryStore.open(tmp_path / "memory.db", "test-embedder", DIM).close()
    with pytest.raises(MindError, match="indexed with embedder"):
        MemoryStore.open(tmp_path / "memory.db", "other-embedder", 8)


def test_killed_writer_never_leaves_a_half_written_batch(tmp_path: Path) -> None:
    """Kill -9 a process in the middle of writing batches: every batch is whole or absent."""
    path = tmp_path / "memory.db"
    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from lifelong.memory.records import NewMemory
        from lifelong.memory.store import MemoryStore
        store = MemoryStore.open(__import__("pathlib").Path({str(path)!r}), "test-embedder", {DIM})
        vectors = np.ones((50, {DIM}), dtype=np.float32)
        for batch in range(100000):
            store.add([NewMemory(f"batch b{{batch}} item {{i}}") for i in range(50)], vectors)
            if batch == 0:
                print("ready", flush=True)  # one batch is in, however slow a loaded machine made it
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    import time

    time.sleep(1.5)
    proc.kill()
    proc.wait()
    store = MemoryStore.open(path, "test-embedder", DIM)
    count = store.count()
    assert count > 0 and count % 50 == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")  # raises if index and table disagree
    last = max(m.id for m in store.list())
    batch = store.get(last).text.split()[1]
    assert len(store.keyword_search(["batch", batch], 100, require_all=True)) == 50
    store.close()


def test_superseding_an_already_superseded_memory_is_refused_and_names_the_current_one(store: Store) -> None:
    from lifelong.errors import InputError

    first = _add(store, NewMemory("The VPN is vpn1.example.org."))[0]
    second = _add(store, NewMemory("The VPN is vpn2.example.org."), supersedes=[first.id])[0]
    third = _add(store, NewMemory("The VPN is vpn3.example.org."), supersedes=[second.id])[0]
    assert second.superseded == (first.id,) and third.superseded == (second.id,)
    generation = store.generation()
    with pytest.raises(InputError, match=rf"#{first.id} was already superseded by #{second.id} then #{third.id}, .*"
                                         rf"pass --supersedes {third.id} instead"):
        _add(store, NewMemory("The VPN is vpn4.example.org."), supersedes=[first.id])
    assert store.generation() == generation  # nothing written
    assert [m.id for m in store.list(include_superseded=False)] == [third.id]
    store.delete(third.id)  # its replacement forgotten: nothing holds #2's place, and #2 stays closed
    with pytest.raises(InputError, match="what replaced it was forgotten"):
        _add(store, NewMemory("The VPN is vpn5.example.org."), supersedes=[second.id])
    assert store.list(include_superseded=False) == []


def test_listing_by_contained_text_matches_it_literally_and_ignores_case(store: Store) -> None:
    _add(store, NewMemory("Sales rose 50% in Plix."), NewMemory("Sales rose 500 units in Plix."), NewMemory("a_b and a-b"))
    assert [m.text for m in store.list(contains="50%")] == ["Sales rose 50% in Plix."]
    assert [m.text for m in store.list(contains="a_b")] == ["a_b and a-b"]
    assert len(store.list(contains="PLIX")) == 2


def test_an_id_no_memory_could_have_is_not_found_not_an_overflow(store: Store) -> None:
    """The API fuzz test sent DELETE /v1/memories/70262278174268185361166368768: SQLite raised
    OverflowError (a 500) where the answer is "no such memory"."""
    _add(store, NewMemory("kept"))
    for impossible in (2**64, 2**200, -(2**70), 0, -1):
        with pytest.raises(NotFoundError):
            store.get(impossible)
        assert store.get_many([impossible]) == {}
        with pytest.raises(NotFoundError):
            _add(store, NewMemory("new"), supersedes=[impossible])
    assert [m.text for m in store.list()] == ["kept"]
