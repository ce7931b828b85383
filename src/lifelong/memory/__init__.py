"""The context layer: an episodic memory in SQLite with hybrid (BM25 + dense) retrieval."""

from lifelong.memory.records import Memory, NewMemory, RecallHit, TRUST_LEVELS
from lifelong.memory.store import MemoryStore

__all__ = ["TRUST_LEVELS", "Memory", "MemoryStore", "NewMemory", "RecallHit"]
