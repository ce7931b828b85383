"""What a mind costs on disk: its memory database, each version, and what `prune` would free.

A merge writes a full checkpoint (about 540 MB for the default model), so a mind grows by
hundreds of megabytes without anyone noticing; this is how a user sees it. Converted models in
the shared cache are not counted: every mind on the machine uses the same copy.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lifelong.versions import BASE_VERSION, VersionRegistry

MEMORY_FILES = ("memory.db", "memory.db-wal", "memory.db-shm")  # WAL mode keeps recent writes beside the db
LEFTOVER_PREFIXES = (".building-", ".pruning-")  # folders a killed sleep, merge or prune left behind


def tree_bytes(path: Path) -> int:
    """Bytes of every file under `path` (or of `path` itself); files that vanish while we
    count (a concurrent prune or checkpoint) count as zero rather than failing."""
    if not path.exists():
        return 0
    if path.is_file():
        return _file_bytes(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(_file_bytes(Path(root) / name) for name in files)
    return total


def _file_bytes(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


@dataclass(frozen=True)
class VersionUsage:
    id: str
    kind: str
    bytes: int
    active: bool
    in_lineage: bool  # the active version or one it is built from: prune keeps it


@dataclass(frozen=True)
class MindUsage:
    path: Path
    active: str
    memory_bytes: int
    versions: list[VersionUsage]
    leftover_bytes: int
    other_bytes: int  # config, audit log, retention probes, the active pointer

    @property
    def total_bytes(self) -> int:
        return self.memory_bytes + sum(v.bytes for v in self.versions) + self.leftover_bytes + self.other_bytes

    @property
    def prunable_bytes(self) -> int:
        return sum(v.bytes for v in self.versions if not v.in_lineage) + self.leftover_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "active": self.active, "memory_bytes": self.memory_bytes,
                "versions": [asdict(v) for v in self.versions], "leftover_bytes": self.leftover_bytes,
                "other_bytes": self.other_bytes, "total_bytes": self.total_bytes, "prunable_bytes": self.prunable_bytes}


def measure(mind_path: Path) -> MindUsage:
    registry = VersionRegistry(mind_path)
    active = registry.active_id()
    keep = set(registry.lineage(active)) if active != BASE_VERSION else set()
    versions = [VersionUsage(m.id, m.kind, tree_bytes(registry.path(m.id)), m.id == active, m.id in keep)
                for m in registry.list()]
    leftovers = sum(tree_bytes(p) for p in registry.root.glob(".*") if p.name.startswith(LEFTOVER_PREFIXES))
    memory = sum(tree_bytes(mind_path / name) for name in MEMORY_FILES)
    counted = memory + sum(v.bytes for v in versions) + leftovers
    return MindUsage(mind_path, active, memory, versions, leftovers, max(0, tree_bytes(mind_path) - counted))


def human(n: int) -> str:
    """Sizes as people read them: 555.2 MB, 84.0 kB."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
