"""Plain records passed between the store, retrieval and the API."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

# Ordered from least to most trusted: a fact may only supersede one of equal or lower trust.
TRUST_LEVELS = ("untrusted", "user", "trusted")
KINDS = ("fact", "qa", "document", "conversation")
PENDING = "pending"  # quarantine value of a memory not yet checked against what the model and memories say


def content_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewMemory:
    """A memory about to be written: validated before any write so a bad batch stores nothing."""

    text: str
    source: str = "api"
    trust: str = "user"
    namespace: str = "default"
    kind: str = "fact"
    key: str | None = None  # what the memory is about (e.g. the question); same key => supersedes
    no_train: str | None = None  # private-data kinds it holds that sleep must never train on ("email,phone")
    quarantine: str | None = None  # why it is quarantined, PENDING until checked, None when clean


@dataclass(frozen=True)
class Memory:
    id: int
    text: str
    source: str
    trust: str
    namespace: str
    kind: str
    key: str | None
    created_at: float
    valid_from: float
    valid_to: float | None
    superseded_by: int | None
    content_hash: str
    no_train: str | None = None  # private-data kinds it holds; such a memory is recalled but never trained on
    quarantine: str | None = None  # why it is held back (never answered from nor trained on), PENDING, or None

    @property
    def current(self) -> bool:
        return self.valid_to is None

    @property
    def quarantined(self) -> bool:
        """Held back by a check (a pending check is not yet a verdict)."""
        return self.quarantine is not None and self.quarantine != PENDING

    @property
    def trainable(self) -> bool:
        return not self.no_train and self.quarantine is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "current": self.current}


@dataclass(frozen=True)
class RecallHit:
    memory: Memory
    score: float
    keyword_rank: int | None = None
    vector_rank: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory.to_dict(),
            "score": self.score,
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
        }
