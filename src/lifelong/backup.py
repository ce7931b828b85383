"""Backups that are whole even while the mind is in use, and restores that never overwrite by accident.

Copying the directory with `cp` while a `learn` is writing can catch memory.db between its
WAL and its main file, and a sleep can rename a version folder mid-copy. So memory.db is copied
with SQLite's online backup API (one read transaction: a snapshot that contains every committed
batch whole, and none half), and the rest (config, versions, the active pointer, the audit log)
is copied while holding the registry lock that sleep, merge, rollback and prune take. A backup
is itself a mind directory: `--mind BACKUP` opens it, and `restore` copies it back the same way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifelong.disk_usage import MEMORY_FILES, tree_bytes
from lifelong.errors import MindError
from lifelong.memory.store import SCHEMA_VERSION
from lifelong.mind_config import require_mind
from lifelong.versions import VersionRegistry

MEMORY_DB = MEMORY_FILES[0]


def _transient(name: str) -> bool:
    """Not part of a mind's state: the database files (copied by the backup API), the lock,
    files being written under a temporary name, and folders a killed sleep or prune left."""
    return name in MEMORY_FILES or name.startswith(".") or name.endswith(".tmp")


@dataclass(frozen=True)
class CopyReport:
    """What a backup or restore wrote."""

    source: Path
    target: Path
    memories: int
    versions: list[str]
    active: str
    bytes: int
    replaced: Path | None = None  # where the mind that a forced restore replaced was kept

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "target": str(self.target), "memories": self.memories, "versions": self.versions,
                "active": self.active, "bytes": self.bytes, "replaced": str(self.replaced) if self.replaced else None}


def backup(mind_path: Path, dest: Path) -> CopyReport:
    """Copy a mind, consistently, to `dest` (which must not exist or be an empty folder)."""
    config = require_mind(mind_path)
    if config.store_url:
        raise MindError(f"{mind_path} keeps its memories in PostgreSQL (schema {config.store_schema}), which `lifelong backup` "
                        f"cannot copy consistently; back them up with pg_dump --schema {config.store_schema} and copy the mind "
                        f"folder (versions) beside it (nothing was written)")
    if _has_contents(dest):
        raise MindError(f"{dest} already exists and is not empty; choose a new backup folder (nothing was written)")
    if dest.resolve().is_relative_to(mind_path.resolve()):
        raise MindError(f"{dest} is inside the mind {mind_path}; put the backup outside it (nothing was written)")
    return _copy_into_place(mind_path, dest)


def restore(source: Path, target: Path, force: bool = False) -> CopyReport:
    """Make `target` a copy of the backup `source`. A non-empty target is refused unless
    `force`; even then it is not deleted but renamed beside it, so nothing stored is lost."""
    require_mind(source)
    if not (source / MEMORY_DB).is_file():
        raise MindError(f"{source} has no {MEMORY_DB}, so it is not a backup of a mind; pass the folder `lifelong backup` wrote")
    if source.resolve() == target.resolve():
        raise MindError(f"{source} is already the mind at --mind; pass another backup folder or another --mind")
    occupied = _has_contents(target)
    if occupied and not force:
        raise MindError(f"{target} is not empty (it holds a mind or other files); pass --force to replace it "
                        "(its contents are kept beside it), or choose another --mind")
    if not occupied:
        return _copy_into_place(source, target)
    staging = _staging(source, target, "restoring")
    try:
        report = _copy_mind(source, staging)
        aside = _free_name(target.with_name(f"{target.name}.replaced-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"))
        with _versions_frozen(target, "restore"):  # not while a sleep or merge is writing into the target
            os.replace(target, aside)
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return CopyReport(source, target, report.memories, report.versions, report.active, report.bytes, replaced=aside)


def _copy_into_place(source: Path, target: Path) -> CopyReport:
    """Copy into a hidden sibling folder, then rename: an interrupted copy never looks like a mind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging(source, target, "partial")
    try:
        report = _copy_mind(source, staging)
        os.replace(staging, target)  # replaces an empty target folder too
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return CopyReport(source, target, report.memories, report.versions, report.active, report.bytes)


def _staging(source: Path, target: Path, what: str) -> Path:
    """A hidden folder beside `target` (same filesystem, so the final rename is atomic), with
    the source mind's permissions rather than mkdtemp's owner-only ones."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{what}-", dir=target.parent))
    os.chmod(staging, source.stat().st_mode & 0o7777)
    return staging


def _copy_mind(source: Path, target: Path) -> CopyReport:
    """Copy the mind at `source` into the empty folder `target` and check the copy."""
    with _versions_frozen(source, "backup"):
        _backup_database(source / MEMORY_DB, target / MEMORY_DB)
        for item in sorted(source.iterdir()):
            if _transient(item.name):
                continue
            if item.is_dir():
                shutil.copytree(item, target / item.name, symlinks=True, ignore=_skip_transient)
            else:
                shutil.copy2(item, target / item.name)
        registry = VersionRegistry(target)
        versions = [m.id for m in registry.list()]
        active = registry.active_id()
    memories = _check_database(target / MEMORY_DB)
    _fsync_tree(target)
    return CopyReport(source, target, memories, versions, active, tree_bytes(target))


def _skip_transient(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if _transient(n)}


@contextmanager
def _versions_frozen(mind_path: Path, what: str) -> Iterator[None]:
    """Hold the registry lock, so no sleep, merge, rollback or prune changes versions or the
    pointer meanwhile. A read-only copy (a backup on read-only media) cannot change at all."""
    if not os.access(mind_path, os.W_OK):
        yield
        return
    with VersionRegistry(mind_path).exclusive(what):
        yield


def _backup_database(source: Path, target: Path) -> None:
    """SQLite's online backup: one read transaction over the whole file, so concurrent
    writers neither block it nor leave half a batch in the copy."""
    if not source.is_file():
        raise MindError(f"{source} is missing; this mind has no memory database to copy (run `lifelong init` on it first)")
    uri = f"file:{source}" + ("" if os.access(source.parent, os.W_OK) else "?immutable=1")
    try:
        with _connection(uri) as src, _connection(str(target), uri=False) as dst:
            src.backup(dst)
    except sqlite3.DatabaseError as exc:
        raise MindError(f"{source} could not be read ({exc}); it may be corrupted, restore it from an earlier backup") from exc


@contextmanager
def _connection(path: str, uri: bool = True) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, uri=uri, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _check_database(path: Path) -> int:
    """The copy's memory count, after checking it is a whole lifelong store this version reads."""
    with _connection(str(path), uri=False) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if check != "ok":
            raise MindError(f"the copy of {path.name} fails SQLite's integrity check ({check}); the source may be damaged, nothing was replaced")
        if "memories" not in tables:
            raise MindError(f"{path.name} is not a lifelong memory store; pass the folder of a mind or a backup")
        if version > SCHEMA_VERSION:
            raise MindError(f"{path.name} has schema version {version}, newer than this lifelong understands ({SCHEMA_VERSION}); upgrade lifelong")
        return int(db.execute("SELECT COUNT(*) FROM memories").fetchone()[0])


def _has_contents(path: Path) -> bool:
    if not path.exists():
        return False
    if not path.is_dir():
        return True
    return any(path.iterdir())


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate


def _fsync_tree(folder: Path) -> None:
    """Contents on disk before the rename makes the copy visible."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with open(Path(root) / name, "rb") as handle:
                os.fsync(handle.fileno())
