"""Which store holds a mind's memories: the embedded SQLite file (default) or PostgreSQL.

A mind names its store in config.toml ([store] url and schema); `lifelong init --store URL`
or LIFELONG_STORE choose PostgreSQL for a new mind, and `lifelong migrate --to URL` moves an
existing one. Both stores have the same methods and the same semantics; the test suite runs
the store tests against each.
"""

from __future__ import annotations

import re
from pathlib import Path

from lifelong.memory.postgres_store import DEFAULT_SCHEMA, PostgresMemoryStore, is_postgres_url
from lifelong.memory.store import MemoryStore

Store = MemoryStore | PostgresMemoryStore

__all__ = ["DEFAULT_SCHEMA", "Store", "default_schema", "is_postgres_url", "open_store"]


def default_schema(mind_directory: Path) -> str:
    """lifelong_<directory name>, lower-cased to what a PostgreSQL identifier allows."""
    name = re.sub(r"[^a-z0-9_]", "_", mind_directory.name.lower()).strip("_") or "mind"
    return f"lifelong_{name}"[:63]


def open_store(location: str | Path, embedder_name: str, dim: int, create: bool = True,
               schema: str = DEFAULT_SCHEMA) -> Store:
    """A PostgreSQL store for a postgresql:// URL, else the SQLite file at `location`."""
    if isinstance(location, str) and is_postgres_url(location):
        return PostgresMemoryStore.open(location, embedder_name, dim, create=create, schema=schema)
    return MemoryStore.open(Path(location), embedder_name, dim, create=create)
