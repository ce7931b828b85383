"""The versions/ folder of a mind and its `active` pointer.

A version folder is written under a temporary name and renamed into place only when
complete, and the pointer is swapped with os.replace, so a crash at any moment leaves either
the old active version or the new one, never a half-written one. Every change is appended
to audit.jsonl.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lifelong.errors import BusyError, NotFoundError
from lifelong.versions.audit import AuditLog
from lifelong.versions.manifest import Manifest

BASE_VERSION = "base"
MANIFEST = "manifest.json"


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


class VersionRegistry:
    def __init__(self, mind_path: Path) -> None:
        self.root = mind_path / "versions"
        self.pointer = mind_path / "active"
        self.audit_log = mind_path / "audit.jsonl"

    @contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """One sleep, merge or rollback at a time per mind: a second one would clean up the
        first's half-built folder or move the pointer under it. The lock is an flock, so the
        kernel releases it when its process dies, even by SIGKILL."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "sleep, merge or rollback"
                raise BusyError(f"another {holder} is changing this mind's versions; wait for it to finish, then run this again") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{what} (pid {os.getpid()})")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def path(self, version_id: str) -> Path:
        return self.root / version_id

    def new_id(self) -> str:
        """The next id, never one used before: after `prune` deleted the newest folder, the
        audit log still names it, and an id must keep meaning one version forever."""
        existing = {int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()}
        return f"v{max(existing | self._audited_numbers(), default=0) + 1}"

    def _audited_numbers(self) -> set[int]:
        numbers: set[int] = set()
        if not self.audit_log.is_file():
            return numbers
        for line in self.audit_log.read_text(encoding="utf-8").splitlines():
            try:
                version = json.loads(line).get("version", "")
            except (json.JSONDecodeError, AttributeError):
                continue  # a torn last line after a crash names nothing
            if isinstance(version, str) and version[1:].isdigit():
                numbers.add(int(version[1:]))
        return numbers

    def create(self, write: Callable[[Path], Manifest]) -> Manifest:
        """Build a version in a temporary folder (write fills it and returns the manifest),
        then rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=self.root))
        try:
            manifest = write(tmp)
            (tmp / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
            _fsync_tree(tmp)  # contents are on disk before the rename makes them visible
            os.replace(tmp, self.path(manifest.id))
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.audit("created", manifest.id, passed=manifest.verdict.passed)
        return manifest

    def clean_incomplete(self) -> list[str]:
        """Remove folders left by a crash mid-build (never active) or mid-prune (already
        renamed away from their id, so no longer a version)."""
        removed = []
        for leftover in [*self.root.glob(".building-*"), *self.root.glob(".pruning-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
        return removed

    def get(self, version_id: str) -> Manifest:
        path = self.path(version_id) / MANIFEST
        if not path.is_file():
            raise NotFoundError(f"no version '{version_id}'; see `lifelong versions` for the versions that exist")
        return Manifest.read(path)

    def list(self) -> list[Manifest]:
        manifests = [Manifest.read(p / MANIFEST) for p in self.root.glob("v*") if (p / MANIFEST).is_file()]
        return sorted(manifests, key=lambda m: int(m.id[1:]))

    def foundation_id(self, version_id: str) -> str | None:
        """The merged checkpoint a version builds on: itself if it is a merge, else the
        nearest merge among its ancestors; None when it builds on the base model."""
        while version_id != BASE_VERSION:
            manifest = self.get(version_id)
            if manifest.kind == "merge":
                return version_id
            version_id = manifest.parent or BASE_VERSION
        return None

    def lineage(self, version_id: str) -> list[str]:
        """A version and its ancestors, newest first (base not included): everything it is
        built from, merge checkpoints and the parents whose training data replay reads."""
        chain: list[str] = []
        while version_id != BASE_VERSION and version_id not in chain:
            chain.append(version_id)
            version_id = self.get(version_id).parent or BASE_VERSION
        return chain

    def active_id(self) -> str:
        if not self.pointer.is_file():
            return BASE_VERSION
        return self.pointer.read_text(encoding="utf-8").strip() or BASE_VERSION

    def activate(self, version_id: str, reason: str) -> None:
        if version_id != BASE_VERSION:
            self.get(version_id)
        tmp = self.pointer.with_name(".active.tmp")
        tmp.write_text(version_id + "\n", encoding="utf-8")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        previous = self.active_id()
        os.replace(tmp, self.pointer)
        self.audit(reason, version_id, previous=previous)

    def audit(self, event: str, version_id: str, **details: object) -> None:
        """One line in the mind's hash-chained audit log (versions/audit.py)."""
        AuditLog(self.audit_log).append(event, version=version_id, **details)
