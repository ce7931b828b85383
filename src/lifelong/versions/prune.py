"""Delete the versions nothing depends on, keeping the active one and everything it is built from.

Versions are never deleted by sleep, merge or rollback, so refused candidates and abandoned
branches pile up (a merge alone is about 540 MB for the default model). Prune keeps the active
version's whole lineage: its parents up to the base, including the merge checkpoint it runs on
and the parents whose training data its next sleep replays. Everything else can go.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong.disk_usage import MindUsage, VersionUsage, measure
from lifelong.versions.registry import VersionRegistry


@dataclass(frozen=True)
class PrunePlan:
    usage: MindUsage  # measured before anything was deleted
    dry_run: bool

    @property
    def keep(self) -> list[VersionUsage]:
        return [v for v in self.usage.versions if v.in_lineage]

    @property
    def remove(self) -> list[VersionUsage]:
        return [v for v in self.usage.versions if not v.in_lineage]

    @property
    def frees_bytes(self) -> int:
        return self.usage.prunable_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "active": self.usage.active, "keep": [v.id for v in self.keep],
                "remove": [v.id for v in self.remove], "frees_bytes": self.frees_bytes,
                "leftover_bytes": self.usage.leftover_bytes, "total_bytes_before": self.usage.total_bytes,
                "versions": self.usage.to_dict()["versions"]}


def prune(mind_path: Path, dry_run: bool = False) -> PrunePlan:
    """Delete every version outside the active lineage (and folders a crash left behind).

    Runs under the registry lock, so it refuses while a sleep, merge or rollback is running
    (one could be about to make a doomed version active). Each folder is first renamed out of
    the versions namespace, then deleted: a kill mid-delete leaves a `.pruning-*` folder that
    is no longer a version and that the next sleep or prune removes.
    """
    registry = VersionRegistry(mind_path)
    if dry_run:
        return PrunePlan(measure(mind_path), dry_run=True)
    with registry.exclusive("prune"):
        plan = PrunePlan(measure(mind_path), dry_run=False)  # measured under the lock: the pointer cannot move now
        for version in plan.remove:
            doomed = registry.root / f".pruning-{version.id}"
            os.replace(registry.path(version.id), doomed)
            registry.audit("pruned", version.id, bytes=version.bytes, active=plan.usage.active)
            shutil.rmtree(doomed)
        registry.clean_incomplete()
    return plan
