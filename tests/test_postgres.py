"""Minds whose memories live in PostgreSQL + pgvector: the same behaviour as memory.db, many
writers at once, and `lifelong migrate` moving a mind over without changing what it recalls.

A real server (PostgreSQL 16 with pgvector, from the `pgserver` wheel) is started by the test
session; see conftest.postgres_url."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lifelong import Mind
from lifelong.errors import InputError, MindError
from lifelong.memory.backends import open_store
from lifelong.memory.postgres_store import PostgresMemoryStore
from lifelong.memory.records import NewMemory
from lifelong.mind_config import read_config
from test_retrieval import AUTHOR_FACTS, FACTS  # the same invented facts the retrieval tests use

DIM = 4


def test_a_postgresql_mind_recalls_forgets_and_keeps_ids_like_memory_db(tmp_path: Path, tiny_lm, embedder, postgres_url: str,
                                                                         postgres_schema: str) -> None:
    results = {}
    for backend in ("sqlite", "postgresql"):
        store = postgres_url if backend == "postgresql" else None
        with Mind.init(tmp_path / backend, store=store, schema=postgres_schema, embedder=embedder, language_model=tiny_lm) as mind:
            assert isinstance(mind.store, PostgresMemoryStore) == (backend == "postgresql")
            ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
            hits = {q: [h.memory.id for h in mind.recall(q, k=2)] for q in
                    ("Which meal is typical of that island country?", "Zentara-7", "Who founded the observatory?")}
            assert hits["Zentara-7"][0] == ids[2]
            assert hits["Which meal is typical of that island country?"][0] == ids[1]
            mind.forget(ids[1])
            assert all(h.memory.id != ids[1] for h in mind.recall("karvosh fish stew national dish", k=5))
            assert mind.recall("karvosh", k=5, mode="keyword") == []
            later = mind.learn_records([NewMemory("The Korvath ferry carries grain.")]).created[0]
            results[backend] = (ids, hits, later)
    assert results["sqlite"] == results["postgresql"]  # same ids, same rankings, ids never reused
    assert read_config(tmp_path / "postgresql").store_url == postgres_url
    assert not (tmp_path / "postgresql" / "memory.db").exists()


def test_topic_focus_reranks_alike_on_both_backends(tmp_path: Path, tiny_lm, embedder, postgres_url: str,
                                                    postgres_schema: str) -> None:
    question = "What tools does Nadia Ferreol use when writing?"
    rankings = {}
    for backend in ("sqlite", "postgresql"):
        store = postgres_url if backend == "postgresql" else None
        with Mind.init(tmp_path / backend, store=store, schema=postgres_schema, embedder=embedder, language_model=tiny_lm) as mind:
            ids = mind.learn_records([NewMemory(f) for f in AUTHOR_FACTS]).created
            rankings[backend] = [h.memory.id for h in mind.recall(question, k=6)]
            assert rankings[backend][0] == ids[4]  # "drafts each novel by hand in green ink"
    assert rankings["sqlite"] == rankings["postgresql"]


def test_a_wrong_store_url_is_one_line_and_leaves_nothing(tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli("init", "--mind", str(tmp_path / "m"), "--store", "postgresql://nobody@/none?host=/nonexistent")
    assert code != 0 and "cannot connect to PostgreSQL" in err and "start the server or fix the URL" in err
    assert not (tmp_path / "m").exists()
    code, _, err = run_cli("init", "--mind", str(tmp_path / "m"), "--store", "mysql://x")
    assert code != 0 and "is not a postgresql:// URL" in err and not (tmp_path / "m").exists()


def test_many_processes_writing_at_once_lose_and_duplicate_nothing(postgres_url: str, postgres_schema: str) -> None:
    """Four processes learn the same 40 texts and 40 of their own at once: 40 + 4 x 40 rows."""
    open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema).close()
    script = textwrap.dedent(f"""
        import sys, numpy as np
        from lifelong.memory.backends import open_store
        from lifelong.memory.records import NewMemory
        store = open_store({postgres_url!r}, "test-embedder", {DIM}, schema={postgres_schema!r})
        me = sys.argv[1]
        for i in range(40):
            store.add([NewMemory(f"shared fact {{i}}"), NewMemory(f"process {{me}} fact {{i}}")], np.ones((2, {DIM}), np.float32))
        store.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(p)]) for p in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema)
    texts = [m.text for m in store.list()]
    store.close()
    assert len(texts) == 40 + 4 * 40 and len(set(texts)) == len(texts)


def test_killed_writer_never_leaves_a_half_written_batch_in_postgresql(postgres_url: str, postgres_schema: str) -> None:
    open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema).close()
    script = textwrap.dedent(f"""
        import numpy as np
        from lifelong.memory.backends import open_store
        from lifelong.memory.records import NewMemory
        store = open_store({postgres_url!r}, "test-embedder", {DIM}, schema={postgres_schema!r})
        for batch in range(100000):
            store.add([NewMemory(f"batch b{{batch}} item {{i}}") for i in range(50)], np.ones((50, {DIM}), np.float32))
            if batch == 0:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    proc.kill()
    proc.wait()
    store = open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema)
    count = store.count()
    assert count > 0 and count % 50 == 0
    batch = store.get(store.max_id()).text.split()[1]
    assert len(store.keyword_search(["batch", batch], 100, require_all=True)) == 50
    store.close()


def test_migrate_moves_every_memory_and_tombstone_and_recall_is_unchanged(tmp_path: Path, tiny_lm, embedder, run_cli,
                                                                          postgres_url: str, postgres_schema: str) -> None:
    path = tmp_path / "mind"
    with Mind.init(path, embedder=embedder, language_model=tiny_lm) as mind:
        ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
        mind.learn_records([NewMemory("Zentara-7 runs at 5.1 gigahertz since the update.")], supersedes=[ids[2]])
        mind.forget(ids[0])
        before = {m.id: m for m in mind.memories()}
        queries = ["Who wrote The Glass Orchard?", "Zentara-7 speed", "Lake of Qessa"]
        recalled = {q: [(h.memory.id, h.keyword_rank, h.vector_rank) for h in mind.recall(q, k=3)] for q in queries}

    code, out, err = run_cli("migrate", "--mind", str(path), "--to", postgres_url, "--schema", postgres_schema)
    assert code == 0, err
    assert f"copied and verified {len(before)} memories and 1 tombstones" in out
    assert read_config(path).store_schema == postgres_schema and not (path / "memory.db").exists()
    assert (path / "memory.db.before-postgresql").is_file()
    with Mind.open(path, embedder=embedder, language_model=tiny_lm) as mind:
        assert isinstance(mind.store, PostgresMemoryStore)
        assert {m.id: m for m in mind.memories()} == before
        assert {q: [(h.memory.id, h.keyword_rank, h.vector_rank) for h in mind.recall(q, k=3)] for q in queries} == recalled
        new = mind.learn_records([NewMemory("A new fact after the move.")]).created[0]
        assert new > max(before) and new != ids[0]  # the forgotten id is not handed out again
    assert any(r["event"] == "migrated" for r in (path / "audit.jsonl").read_text().splitlines() and
               [__import__("json").loads(line) for line in (path / "audit.jsonl").read_text().splitlines()])

    code, _, err = run_cli("migrate", "--mind", str(path), "--to", postgres_url)
    assert code != 0 and "already keeps its memories in PostgreSQL" in err


def test_migrate_into_a_schema_holding_other_memories_is_refused_and_changes_nothing(
        tmp_path: Path, tiny_lm, embedder, postgres_url: str, postgres_schema: str) -> None:
    other = open_store(postgres_url, embedder.name, embedder.dim, schema=postgres_schema)
    other.add([NewMemory("someone else's memory")], np.ones((1, embedder.dim), np.float32))
    other.close()
    path = tmp_path / "mind"
    with Mind.init(path, embedder=embedder, language_model=tiny_lm) as mind:
        mind.learn_records([NewMemory(f) for f in FACTS])
    from lifelong.migrate import migrate_to_postgres

    with pytest.raises(MindError, match="migrate into an empty schema"):
        migrate_to_postgres(path, postgres_url, postgres_schema)
    assert read_config(path).store_url is None and (path / "memory.db").is_file()
    with pytest.raises(InputError, match="not a postgresql:// URL"):
        migrate_to_postgres(path, "sqlite:///x")


RANKING_TEXTS = (
    "The author Basil Mahfouz Al-Kuwaiti writes novels about Kuwait City.",
    "Authors often write about their cities; this author wrote about Paris.",
    "Naïve readers read the café's menu twice: café, café, café.",
    "The snake_case name user_id appears in the code_review notes.",
    "Running runners ran; the run was run by a running club.",
    "A very long memory " + "about rivers and mountains and valleys " * 30 + "ends here.",
    "Zentara-7 is a probe launched in 2041 from the Korvath station.",
    "The 1990s saw the rise of the World Wide Web and e-mail.",
    "Books, booking and booked rooms: the hotel's books were audited.",
    "Her father was a meteorologist and her mother a painter.",
)
RANKING_QUERIES = (["author"], ["authors", "author", "wrote"], ["cafe"], ["naïve"], ["user_id"], ["running", "runs"],
                   ["rivers", "mountains"], ["zentara", "7", "probe"], ["1990s", "web"], ["books", "booked"],
                   ["father", "meteorologist"], ["the"], ["nothing", "matches", "this"])


def test_postgresql_keyword_search_ranks_and_scores_as_fts5_does(tmp_path: Path, postgres_url: str, postgres_schema: str) -> None:
    """The same terms (FTS5's porter/unicode61 tokenizer), the same BM25: equal ids in equal order
    with equal scores, for stemmed forms, diacritics, repeats and a long memory; snake_case words
    (a phrase to FTS5) find the same memories."""
    from lifelong.memory.store import MemoryStore

    sqlite = MemoryStore.open(tmp_path / "memory.db", "test-embedder", DIM)
    postgres = open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(RANKING_TEXTS), DIM)).astype(np.float32)
    for store in (sqlite, postgres):
        store.add([NewMemory(t) for t in RANKING_TEXTS], vectors)
        store.delete(store.keyword_search(["meteorologist"], 1)[0][0])  # statistics follow deletions too
    for words in RANKING_QUERIES:
        for require_all in (False, True):
            expected = sqlite.keyword_search(words, 20, require_all=require_all)
            got = postgres.keyword_search(words, 20, require_all=require_all)
            if any("_" in w for w in words):  # FTS5 splits it into a phrase; PostgreSQL scores a phrase's terms apart
                assert {i for i, _ in got} == {i for i, _ in expected}, (words, require_all)
                continue
            assert [i for i, _ in got] == [i for i, _ in expected], (words, require_all)
            assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-9, atol=1e-12), (words, require_all)
    assert sqlite.keyword_search(["father"], 5) == postgres.keyword_search(["father"], 5) == []
    sqlite.close()
    postgres.close()


def test_a_schema_1_postgresql_mind_is_upgraded_to_fts5_terms_in_place(postgres_url: str, postgres_schema: str) -> None:
    """Minds made before schema 2 indexed PostgreSQL's english lexemes; opening one rewrites its
    index to FTS5's terms and keeps every memory."""
    store = open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema)
    ids = [r.id for r in store.add([NewMemory(t) for t in RANKING_TEXTS], np.ones((len(RANKING_TEXTS), DIM), np.float32))]
    expected = store.keyword_search(["running", "authors"], 20)
    s = postgres_schema
    for statement in (  # turn it back into what schema 1 created
            f"ALTER TABLE {s}.memories DROP COLUMN words", f"ALTER TABLE {s}.memories DROP COLUMN length",
            f"ALTER TABLE {s}.memories ADD COLUMN words tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
            f"ALTER TABLE {s}.memories ADD COLUMN length INTEGER GENERATED ALWAYS AS "
            f"(cardinality(regexp_split_to_array(trim(regexp_replace(text, '\\W+', ' ', 'g')), ' '))) STORED",
            f"UPDATE {s}.meta SET value = '1' WHERE key = 'schema_version'"):
        store._db.execute(statement)
    store.close()
    upgraded = open_store(postgres_url, "test-embedder", DIM, schema=postgres_schema)
    assert upgraded._meta()["schema_version"] == "2"
    assert [m.id for m in upgraded.list()] == ids
    assert upgraded.keyword_search(["running", "authors"], 20) == expected
    upgraded.add([NewMemory("A runner's new memory.")], np.ones((1, DIM), np.float32))
    assert upgraded.keyword_search(["runner"], 20)[0][0] > max(ids)
    upgraded.close()
