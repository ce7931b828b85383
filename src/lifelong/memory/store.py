"""SQLite store of memories: the single source of truth for the context layer.

Every write is one transaction (a crash leaves all of a batch or none of it). Memories are
never updated in place except to close their validity interval when a later fact supersedes
them, so history survives. Ids are AUTOINCREMENT: a forgotten id is never reused, so
citations and version manifests can name memories forever.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifelong.errors import MindError, NotFoundError
from lifelong.memory.fts_terms import FTS5_TOKENIZER
from lifelong.memory.records import PENDING, Memory, NewMemory, content_hash
from lifelong.memory.store_rules import check_supersedable, listing_filter, split_by_trust, storable

SCHEMA_VERSION = 2  # 2: memories.no_train (private data kept, never trained on) and memories.quarantine

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    source TEXT NOT NULL,
    trust TEXT NOT NULL CHECK (trust IN ('untrusted', 'user', 'trusted')),
    namespace TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT,
    created_at REAL NOT NULL,
    valid_from REAL NOT NULL,
    valid_to REAL,
    superseded_by INTEGER,
    content_hash TEXT NOT NULL,
    embedding BLOB NOT NULL,
    no_train TEXT,
    quarantine TEXT
);
CREATE INDEX memories_ns_key ON memories (namespace, key) WHERE valid_to IS NULL;
CREATE INDEX memories_ns_hash ON memories (namespace, content_hash);
CREATE VIRTUAL TABLE memories_fts USING fts5 (text, content='memories', content_rowid='id', tokenize='""" + FTS5_TOKENIZER + """');
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE INDEX IF NOT EXISTS memories_pending ON memories (id) WHERE quarantine IS NOT NULL;
CREATE TABLE forgotten (id INTEGER PRIMARY KEY, content_hash TEXT NOT NULL, forgotten_at REAL NOT NULL);
"""

_COLUMNS = "id, text, source, trust, namespace, kind, key, created_at, valid_from, valid_to, superseded_by, content_hash, no_train, quarantine"
# each step upgrades a store from the version before it, in one transaction
_MIGRATIONS = {2: ["ALTER TABLE memories ADD COLUMN no_train TEXT", "ALTER TABLE memories ADD COLUMN quarantine TEXT",
                   # every ask looks for memories still to check: an index, not a scan of 100k rows
                   "CREATE INDEX IF NOT EXISTS memories_pending ON memories (id) WHERE quarantine IS NOT NULL"]}


@dataclass(frozen=True)
class WriteResult:
    """What happened to one submitted memory."""

    id: int
    created: bool  # False: an identical current memory already existed
    superseded: tuple[int, ...] = ()
    conflicts: tuple[int, ...] = ()  # same key, higher trust: kept current, not overwritten


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements (triggers contain semicolons), so the schema is created
    inside our own transaction; sqlite3.executescript would commit first."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""


def _validity(db: sqlite3.Connection) -> Callable[[int], tuple[float | None, int | None] | None]:
    return lambda memory_id: db.execute("SELECT valid_to, superseded_by FROM memories WHERE id = ?", (memory_id,)).fetchone()


def fts5_expression(words: Sequence[str], require_all: bool = False) -> str:
    """An FTS5 query of the words, each quoted so punctuation and FTS5 keywords are inert."""
    quoted = [f'"{w}"' for w in (word.replace('"', "") for word in words) if w]
    return (" AND " if require_all else " OR ").join(quoted)


def _row_to_memory(row: Sequence) -> Memory:
    return Memory(*row)


class MemoryStore:
    searches_vectors = False  # vectors are searched in each process's RAM (vector_index.VectorIndex)

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, embedder_name: str, dim: int, create: bool = True) -> MemoryStore:
        """Open (or create) a store, refusing newer schemas, foreign files and embedder changes."""
        exists = path.exists() and path.stat().st_size > 0
        if not exists and not create:
            raise MindError(f"no memory database at {path}; run `lifelong init` first or pass --mind DIR")
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            db.close()
            raise MindError(
                f"{path} is corrupted or not a SQLite database ({exc}); restore it from a backup "
                "or point --mind at another directory (lifelong did not modify it)"
            ) from exc
        if version > SCHEMA_VERSION:
            db.close()
            raise MindError(
                f"{path} has schema version {version}, newer than this lifelong understands ({SCHEMA_VERSION}); "
                "upgrade lifelong (pip install -U lifelong) to open it"
            )
        if tables and "memories" not in tables:
            db.close()
            raise MindError(f"{path} is a SQLite database but not a lifelong memory store; point --mind at another directory")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # a deleted memory's bytes are overwritten, not left in free pages
        store = cls(db, path)
        if not tables:
            with store._transaction():
                for statement in _statements(_SCHEMA):
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("embedder", embedder_name), ("dim", str(dim)), ("generation", "0")],
                )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        else:
            store._check_embedder(embedder_name, dim)
            store._migrate(version)
        return store

    def _migrate(self, version: int) -> None:
        """Upgrade a store written by an earlier lifelong, all steps in one transaction: a
        crash leaves the old schema, never half of a new one."""
        if version >= SCHEMA_VERSION:
            return
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have just migrated it
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS.get(step, []):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_embedder(self, embedder_name: str, dim: int) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        if meta.get("embedder") != embedder_name or int(meta.get("dim", -1)) != dim:
            raise MindError(
                f"{self.path} was indexed with embedder {meta.get('embedder')} (dim {meta.get('dim')}), "
                f"not {embedder_name} (dim {dim}); open it with the embedder it was built with"
            )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        self._db.execute("COMMIT")

    def generation(self) -> int:
        """A counter bumped by every write, so readers in other processes see when to reload."""
        return int(self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    # -- writes --------------------------------------------------------------------------

    def add(
        self,
        items: Sequence[NewMemory],
        embeddings: np.ndarray,
        supersedes: Iterable[int] = (),
        now: float | None = None,
    ) -> list[WriteResult]:
        """Write a batch in one transaction; identical current memories are not duplicated."""
        if len(items) != len(embeddings):
            raise ValueError("one embedding per memory")
        explicit = list(supersedes)
        now = time.time() if now is None else now
        results: list[WriteResult] = []
        with self._transaction() as db:
            for target in explicit:
                check_supersedable(_validity(db), target)
            for item, vector in zip(items, embeddings, strict=True):
                results.append(self._add_one(db, item, np.asarray(vector, dtype=np.float32), explicit, now))
        return results

    def _add_one(self, db: sqlite3.Connection, item: NewMemory, vector: np.ndarray, explicit: list[int], now: float) -> WriteResult:
        digest = content_hash(item.text)
        same = db.execute(
            "SELECT id FROM memories WHERE namespace = ? AND content_hash = ? AND valid_to IS NULL",
            (item.namespace, digest),
        ).fetchone()
        if same is not None:
            return WriteResult(id=same[0], created=False)
        cursor = db.execute(
            "INSERT INTO memories (text, source, trust, namespace, kind, key, created_at, valid_from, valid_to,"
            " superseded_by, content_hash, embedding, no_train, quarantine) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?)",
            (item.text.strip(), item.source, item.trust, item.namespace, item.kind, item.key, now, now, digest, vector.tobytes(),
             item.no_train, item.quarantine),
        )
        new_id = int(cursor.lastrowid)
        superseded, conflicts = list(explicit), []
        if item.key:
            rows = db.execute(
                "SELECT id, trust FROM memories WHERE namespace = ? AND key = ? AND valid_to IS NULL AND id != ? ORDER BY id",
                (item.namespace, item.key, new_id),
            ).fetchall()
            closes, conflicts = split_by_trust(rows, item.trust)
            superseded += closes
        closed = [old_id for old_id in superseded if db.execute(
            "UPDATE memories SET valid_to = ?, superseded_by = ? WHERE id = ? AND valid_to IS NULL", (now, new_id, old_id),
        ).rowcount]  # report only what this memory really closed (an earlier one in the batch may have)
        return WriteResult(id=new_id, created=True, superseded=tuple(closed), conflicts=tuple(conflicts))

    def set_quarantine(self, memory_id: int, reason: str | None, trust: str | None = None) -> None:
        """Quarantine a memory (`reason`), or release it (None): kept, but never retrieved into
        answers nor trained on while quarantined. A release a person vouched for raises its
        `trust` too."""
        self.get(memory_id)  # a clear error for an unknown id
        with self._transaction() as db:
            db.execute("UPDATE memories SET quarantine = ?, trust = COALESCE(?, trust) WHERE id = ?", (reason, trust, memory_id))

    def supersede(self, old_id: int, new_id: int) -> bool:
        """Close `old_id`'s validity in favour of `new_id` (a correction found after both were
        stored); False when it was no longer current."""
        with self._transaction() as db:
            return bool(db.execute("UPDATE memories SET valid_to = ?, superseded_by = ? WHERE id = ? AND valid_to IS NULL",
                                   (time.time(), new_id, old_id)).rowcount)

    def pending_screening(self) -> list[Memory]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE quarantine IS NOT NULL AND quarantine = ? ORDER BY id", (PENDING,)).fetchall()
        return [_row_to_memory(r) for r in rows]

    def quarantined(self) -> list[Memory]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE quarantine IS NOT NULL AND quarantine != ? ORDER BY id",
                                (PENDING,)).fetchall()
        return [_row_to_memory(r) for r in rows]

    def delete(self, memory_id: int) -> Memory:
        """Remove a memory and its index entries; only its id and hash are kept, as a tombstone."""
        memory = self.get(memory_id)
        with self._transaction() as db:
            db.execute("DELETE FROM memories WHERE id = ?", (memory_id,))
            db.execute("UPDATE memories SET superseded_by = NULL WHERE superseded_by = ?", (memory_id,))
            db.execute(
                "INSERT OR REPLACE INTO forgotten (id, content_hash, forgotten_at) VALUES (?, ?, ?)",
                (memory_id, memory.content_hash, time.time()),
            )
        return memory

    def purge_deleted(self) -> None:
        """Make deletions reach the disk: deleted rows are zeroed (secure_delete), but the
        keyword index keeps a deleted text's words in its old segments until they are merged,
        and the write-ahead log keeps earlier pages until a checkpoint. Forgetting runs this,
        so a forgotten memory's text and words leave every file of the store."""
        with self._transaction() as db:
            db.execute("INSERT INTO memories_fts (memories_fts) VALUES ('optimize')")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a reader in another process may delay it; the next forget retries

    # -- reads ---------------------------------------------------------------------------

    def get(self, memory_id: int) -> Memory:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone() \
            if storable(memory_id) else None
        if row is None:
            raise NotFoundError(f"no memory with id {memory_id}; see `lifelong memories` for the ids that exist")
        return _row_to_memory(row)

    def get_many(self, ids: Sequence[int]) -> dict[int, Memory]:
        """The memories that exist among `ids` (queried in chunks: SQLite caps bound variables)."""
        found: dict[int, Memory] = {}
        ids = [i for i in ids if storable(i)]
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM memories WHERE id IN ({marks})", chunk).fetchall()
            found.update((row[0], _row_to_memory(row)) for row in rows)
        return found

    def revision(self) -> tuple[int, int]:
        """Changes whenever a memory is forgotten or stops being current (what decides which
        trained modules may still serve), and costs two counts to read."""
        forgotten = self._db.execute("SELECT COUNT(*) FROM forgotten").fetchone()[0]
        closed = self._db.execute("SELECT COUNT(*) FROM memories WHERE valid_to IS NOT NULL").fetchone()[0]
        return int(forgotten), int(closed)

    def list(
        self,
        namespace: str | None = None,
        source: str | None = None,
        include_superseded: bool = True,
        limit: int | None = None,
        contains: str | None = None,
    ) -> list[Memory]:
        where, params = listing_filter("?", "LIKE", namespace, source, include_superseded, contains)  # LIKE ignores ASCII case
        tail = f" LIMIT {int(limit)}" if limit else ""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM memories {where} ORDER BY id{tail}", params).fetchall()
        return [_row_to_memory(r) for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM memories").fetchone()[0])

    def keyword_search(self, words: Sequence[str], limit: int, namespace: str | None = None,
                       require_all: bool = False) -> list[tuple[int, float]]:
        """BM25 over FTS5 for any (or, with `require_all`, every) of `words`.

        Without a namespace the FTS table is queried alone: joining `memories` costs a row
        lookup per match, which at 100k memories tripled p95 latency for common words.
        """
        match = fts5_expression(words, require_all)
        if not match:
            return []
        if namespace is None:
            rows = self._db.execute(
                "SELECT rowid, bm25(memories_fts) AS s FROM memories_fts WHERE memories_fts MATCH ? ORDER BY s LIMIT ?",
                (match, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT f.rowid, bm25(memories_fts) AS s FROM memories_fts f JOIN memories m ON m.id = f.rowid "
                "WHERE memories_fts MATCH ? AND m.namespace = ? ORDER BY s LIMIT ?",
                (match, namespace, limit),
            ).fetchall()
        return [(int(i), -float(s)) for i, s in rows]

    def next_id(self) -> int:
        """The id the next memory will get: AUTOINCREMENT never hands out a forgotten id again."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'memories'").fetchone()
        return int(row[0]) + 1 if row else 1

    def forgotten(self) -> list[tuple[int, str, float]]:
        """Tombstones: (id, content hash, when) of every forgotten memory."""
        return [(int(i), h, float(t)) for i, h, t in
                self._db.execute("SELECT id, content_hash, forgotten_at FROM forgotten ORDER BY id").fetchall()]

    def max_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM memories").fetchone()[0])

    def ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._db.execute("SELECT id FROM memories ORDER BY id")), dtype=np.int64)

    def vectors(self, after_id: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, embedding matrix, namespaces) of memories with id > after_id, for the vector index."""
        rows = self._db.execute(
            "SELECT id, embedding, namespace FROM memories WHERE id > ? ORDER BY id", (after_id,)
        ).fetchall()
        dim = int(self._db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()[0])
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, matrix, [r[2] for r in rows]
