"""Version registry: atomic builds, the active pointer, rollback, audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelong.errors import NotFoundError
from lifelong.versions import BASE_VERSION, Manifest, Verdict, VersionRegistry


def _manifest(version_id: str, parent: str) -> Manifest:
    return Manifest(version_id, parent, 0.0, "module", [1], {"1": "h"}, "d", {}, {}, Verdict(True), "tiny")


def test_versions_activate_and_roll_back_with_an_audit_trail(tmp_path: Path) -> None:
    registry = VersionRegistry(tmp_path)
    assert registry.active_id() == BASE_VERSION
    first = registry.create(lambda folder: _manifest(registry.new_id(), BASE_VERSION))
    registry.activate(first.id, "promoted")
    second = registry.create(lambda folder: _manifest(registry.new_id(), first.id))
    registry.activate(second.id, "promoted")
    assert [m.id for m in registry.list()] == ["v1", "v2"] and registry.get("v2").parent == "v1"
    registry.activate("v1", "rollback")
    assert registry.active_id() == "v1"
    events = [json.loads(line) for line in registry.audit_log.read_text().splitlines()]
    assert [(e["event"], e["version"]) for e in events][-1] == ("rollback", "v1")
    with pytest.raises(NotFoundError, match="lifelong versions"):
        registry.activate("v9", "rollback")
    assert registry.active_id() == "v1"


def test_a_crash_while_building_leaves_no_version_and_is_cleaned(tmp_path: Path) -> None:
    registry = VersionRegistry(tmp_path)

    def crash(folder: Path) -> Manifest:
        (folder / "adapter").mkdir()
        raise KeyboardInterrupt  # as if killed mid-write

    with pytest.raises(KeyboardInterrupt):
        registry.create(crash)
    assert registry.list() == [] and registry.active_id() == BASE_VERSION
    (registry.root / ".building-leftover").mkdir()  # what SIGKILL would leave
    assert registry.clean_incomplete() == [".building-leftover"]
