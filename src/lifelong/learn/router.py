"""Which knowledge module, if any, may act on an input.

A module learned from a sleep's memories is only asked about those memories; on everything
else the exact base weights answer, so what the base knew cannot be damaged by a module it
never runs. The router keeps, per module, unit embeddings of the memories it learned (each
memory whole and each of its sentences, since a question is usually about one sentence of a
long note). An input goes to the module holding the nearest key when that key is within the
radius (cosine similarity >= radius), and to the base otherwise: keys with a radius, as GRACE
and WISE route edits, built from the memories' embeddings the store already has.

The default radius 0.5 was read off all-MiniLM-L6-v2 similarities between questions and the
notes that answer them (lowest 0.50, median 0.76) against general questions and text
(95th percentile 0.30 to 0.50): `lifelong bench` reports the router's precision and recall.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifelong.learn.synthesis import sentences
from lifelong.memory.embedder import Embedder

DEFAULT_RADIUS = 0.5
KEYS_FILE = "router_keys.npy"
KEY_MEMORIES_FILE = "router_key_memories.npy"  # the memory id behind each key
_MEMORY_BLOCK = re.compile(r"<memory id=\"\d+\"[^>]*>(.*?)</memory>", re.DOTALL)  # [^>]*: a source="untrusted" mark


def key_texts(memory_texts: Sequence[str]) -> list[str]:
    """Each memory, plus each of its sentences when it has more than one."""
    return [text for text, _ in keyed_texts(memory_texts, range(len(memory_texts)))]


def keyed_texts(memory_texts: Sequence[str], memory_ids: Sequence[int]) -> list[tuple[str, int]]:
    """(key text, id of the memory it comes from), in `key_texts` order."""
    keys: list[tuple[str, int]] = []
    for text, memory_id in zip(memory_texts, memory_ids, strict=True):
        keys.append((text, memory_id))
        parts = sentences(text)
        if len(parts) > 1:
            keys += [(sentence, memory_id) for sentence in parts]
    return keys


def routing_text(user_content: str) -> str:
    """What an input asks about: the question, without any memories quoted into the prompt
    (retrieved notes must not pull an unrelated question onto a module)."""
    if "</memory>" not in user_content:
        return user_content
    rest = _MEMORY_BLOCK.sub("", user_content).strip()
    return rest.removeprefix("Question:").strip()


_NOTE_ID = re.compile(r"<memory id=\"(\d+)\"[^>]*>")


def quoted_notes(user_content: str) -> list[str]:
    """The texts of the memories quoted into a prompt, in prompt order."""
    return _MEMORY_BLOCK.findall(user_content)


def quoted_memory_ids(user_content: str) -> set[int]:
    """Ids of the memories quoted into a prompt (as prompt.render_memories writes them)."""
    return {int(i) for i in _NOTE_ID.findall(user_content)}


@dataclass(frozen=True)
class ModuleKeys:
    name: str  # the adapter name: the version that trained the module
    vectors: np.ndarray  # (keys, dim), unit-normalised
    key_memories: np.ndarray | None = None  # (keys,) the memory id behind each key

    def save(self, folder: Path) -> None:
        np.save(folder / KEYS_FILE, self.vectors.astype(np.float32))
        if self.key_memories is not None:
            np.save(folder / KEY_MEMORIES_FILE, self.key_memories.astype(np.int64))

    @classmethod
    def load(cls, name: str, folder: Path) -> ModuleKeys:
        owners = folder / KEY_MEMORIES_FILE
        return cls(name, np.load(folder / KEYS_FILE), np.load(owners) if owners.is_file() else None)


class Router:
    """Nearest key within a radius wins; no key within it means the base weights."""

    def __init__(self, embedder: Embedder, modules: Sequence[ModuleKeys], radius: float = DEFAULT_RADIUS) -> None:
        self.embedder = embedder
        self.radius = radius
        self.module_keys = tuple(modules)  # kept so a view of part of the library needs no second read from disk
        self.names = [m.name for m in modules]
        self._key_memory = np.concatenate([m.key_memories if m.key_memories is not None else np.full(len(m.vectors), -1)
                                           for m in modules]) if modules else np.zeros(0, int)
        self._owner = np.concatenate([np.full(len(m.vectors), i) for i, m in enumerate(modules)]) if modules else np.zeros(0, int)
        self._keys = np.concatenate([m.vectors for m in modules]) if modules else np.zeros((0, embedder.dim), np.float32)
        self._cache: dict[str, tuple[str | None, float]] = {}
        # text -> memories of its nearest key's module with a key within the radius (the nearest
        # key's own memory among them whenever the text is routed)
        self._claimed: dict[str, set[int]] = {}

    def nearest(self, texts: Sequence[str]) -> list[tuple[str | None, float]]:
        """(module name or None, similarity of the nearest key) for each text."""
        if len(self._cache) > 50_000:  # a long-running server asks many distinct questions
            self._cache.clear()
            self._claimed.clear()
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing and len(self._keys):
            similarity = self.embedder.embed(missing) @ self._keys.T
            best = similarity.argmax(axis=1)
            for text, row, column in zip(missing, similarity, best, strict=True):
                score = float(row[column])
                self._cache[text] = (self.names[int(self._owner[column])] if score >= self.radius else None, score)
                near = (row >= self.radius) & (self._owner == self._owner[column])
                self._claimed[text] = {int(i) for i in self._key_memory[near] if i >= 0}
        for text in missing:
            self._cache.setdefault(text, (None, 0.0))
        return [self._cache[t] for t in texts]

    def route(self, texts: Sequence[str]) -> list[str | None]:
        return [name for name, _ in self.nearest(texts)]

    def route_prompts(self, user_contents: Sequence[str]) -> list[str | None]:
        """Routes for whole user turns. A module steps aside when the prompt already quotes a
        memory it learned whose key is within the radius of the question (the nearest one, or
        another sentence of the same document the question is as close to): the base reads
        that note exactly as retrieval alone would, so a module answers only where retrieval
        missed every note it holds on the question, and never reads one worse. (With the
        nearest key's memory alone, a module read the neighbouring chunk of a passage itself
        and paraphrased its answer away.)"""
        questions = [routing_text(c) for c in user_contents]
        names = self.route(questions)
        return [None if name is not None and self._claimed.get(q, set()) & quoted_memory_ids(content) else name
                for name, q, content in zip(names, questions, user_contents, strict=True)]
