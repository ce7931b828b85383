"""`lifelong migrate --to postgresql://...`: move a mind's memories from its memory.db into
PostgreSQL, verified row by row, then point the mind at the server.

Ids, validity intervals, trust, quarantine and private-data marks, embeddings and the
tombstones of forgotten memories are copied as they are, so every version manifest, citation
and audit line that names a memory id keeps naming the same memory. Versions (PEFT adapter
folders, manifests) and the audit log stay in the mind directory: they are files, and the mind
directory is what `--mind` points at on every machine that serves it.

Order, for a crash at any point: copy in one transaction, verify, then switch config.toml by an
atomic rename. Until the switch the mind still reads memory.db; running migrate again after a
crash finds the copy, verifies it and switches. memory.db is kept, renamed, for the way back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InputError, MindError
from lifelong.memory.backends import default_schema, is_postgres_url
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.postgres_store import PostgresMemoryStore
from lifelong.memory.records import Memory, content_hash
from lifelong.memory.store import MemoryStore
from lifelong.mind_config import require_mind, write_config
from lifelong.versions import VersionRegistry

SQLITE_FILE = "memory.db"
KEPT_SUFFIX = ".before-postgresql"


@dataclass(frozen=True)
class MigrationReport:
    memories: int
    forgotten: int
    next_id: int
    url: str
    schema: str
    kept_file: str
    resumed: bool  # an earlier, interrupted migrate had already copied the rows

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def migrate_to_postgres(mind_path: Path, url: str, schema: str | None = None) -> MigrationReport:
    config = require_mind(mind_path)
    if not is_postgres_url(url):
        raise InputError(f"--to {url!r} is not a postgresql:// URL; pass postgresql://USER@HOST/DB")
    if config.store_url:
        raise MindError(f"{mind_path} already keeps its memories in PostgreSQL (schema {config.store_schema}); nothing to migrate")
    if not (mind_path / SQLITE_FILE).is_file():
        raise MindError(f"{mind_path} has no {SQLITE_FILE} to migrate; run `lifelong init` first")
    schema = schema or default_schema(mind_path)
    embedder = MiniLMEmbedder()  # name and dim only: nothing is embedded again
    source = MemoryStore.open(mind_path / SQLITE_FILE, embedder.name, embedder.dim, create=False)
    try:
        memories = source.list()
        ids, vectors, _ = source.vectors()
        forgotten, next_id = source.forgotten(), source.next_id()
    finally:
        source.close()
    if [m.id for m in memories] != ids.tolist():
        raise MindError(f"{mind_path / SQLITE_FILE} changed while it was read; run migrate again when no learn is running")

    target = PostgresMemoryStore.open(url, embedder.name, embedder.dim, create=True, schema=schema)
    try:
        resumed = target.count() > 0 or bool(target.forgotten())
        if not resumed:
            target.import_rows(memories, vectors, forgotten, next_id)
        problems = differences(memories, vectors, forgotten, target)
        if problems:
            hint = "; it held other memories before: migrate into an empty schema (--schema NAME)" if resumed else ""
            raise MindError(f"the copy in schema {schema} differs from {SQLITE_FILE} ({problems[0]}{hint}); "
                            f"the mind still uses {SQLITE_FILE}")
    finally:
        target.close()

    write_config(mind_path, dataclasses.replace(config, store_url=url, store_schema=schema))
    kept = mind_path / (SQLITE_FILE + KEPT_SUFFIX)
    for name in (SQLITE_FILE, SQLITE_FILE + "-wal", SQLITE_FILE + "-shm"):
        if (mind_path / name).exists():
            (mind_path / name).replace(mind_path / name.replace(SQLITE_FILE, SQLITE_FILE + KEPT_SUFFIX))
    registry = VersionRegistry(mind_path)
    registry.audit("migrated", registry.active_id(), to="postgresql", schema=schema,
                   memories=len(memories), forgotten=len(forgotten))
    return MigrationReport(len(memories), len(forgotten), next_id, url, schema, str(kept), resumed)


def differences(memories: list[Memory], vectors: np.ndarray, forgotten: list[tuple[int, str, float]],
                target: PostgresMemoryStore) -> list[str]:
    """What the PostgreSQL copy does not hold exactly as the source does: each memory's fields and
    content hash (recomputed from the copied text), its embedding, the tombstones."""
    copied = target.get_many([m.id for m in memories])
    problems = [f"{target.count()} memories in the copy, {len(memories)} in the source"] if target.count() != len(memories) else []
    for memory in memories:
        other = copied.get(memory.id)
        if other != memory:
            problems.append(f"memory {memory.id} differs or is missing")
        elif content_hash(other.text) != memory.content_hash:
            problems.append(f"memory {memory.id}'s text does not match its hash")
    _, copied_vectors, _ = target.vectors()
    if copied_vectors.shape != vectors.shape or not np.array_equal(copied_vectors, vectors):
        problems.append("embeddings differ")
    if target.forgotten() != forgotten:
        problems.append("tombstones of forgotten memories differ")
    return problems
