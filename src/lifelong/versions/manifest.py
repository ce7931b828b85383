"""What a version is: enough to audit it, reproduce it, and undo it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    id: str
    parent: str | None
    created_at: float
    kind: str  # "module" (a LoRA adapter) or "merge" (a new base checkpoint)
    memory_ids: list[int]
    memory_hashes: dict[str, str]  # id -> content hash, so a later forget can find dependants
    synthetic_data_hash: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    verdict: Verdict
    base_model: str
    data_sources: list[str] = field(default_factory=list)  # kinds of synthetic examples used
    # Memories an ancestor consolidated that a newer fact has since replaced: this version
    # trained on the replacement and dropped them from replay, so the current value wins.
    superseded_ids: list[int] = field(default_factory=list)
    # A routed version serves a library: the versions whose modules (adapter + router keys)
    # it loads, this one included. Empty: one adapter in this folder, acting on every input.
    modules: list[str] = field(default_factory=list)
    own_memory_ids: list[int] = field(default_factory=list)  # what this version's own module learned

    @property
    def trained_memory_ids(self) -> list[int]:
        """The memories this version's own weights learned: a library version's module learned
        only its own (its memory_ids list the whole library's), an unrouted module everything
        it continued from its parent."""
        return self.own_memory_ids if self.modules else self.memory_ids

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["verdict"] = Verdict(**data["verdict"])
        return cls(**data)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_json(path.read_text(encoding="utf-8"))
