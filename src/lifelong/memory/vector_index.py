"""Exact inner-product search over unit vectors held in RAM.

Exact search is a single matrix-vector product, bound by memory bandwidth: about 9 ms at
100k x 384 float32 on two cores (benchmarks/retrieval_latency.py), so an approximate index
would add recall loss and a dependency for little gain at the sizes one mind reaches.
Rows live in a buffer with spare capacity, so a write appends instead of copying every
vector (which took ~0.3 s at 100k).
"""

from __future__ import annotations

import numpy as np


class VectorIndex:
    def __init__(self, ids: np.ndarray, matrix: np.ndarray, namespaces: list[str]) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self._namespaces = np.asarray(namespaces, dtype=object)
        self._size = len(self._ids)
        self._namespace_masks: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def ids(self) -> np.ndarray:
        return self._ids[: self._size]

    @property
    def max_id(self) -> int:
        return int(self._ids[self._size - 1]) if self._size else 0

    def append(self, ids: np.ndarray, matrix: np.ndarray, namespaces: list[str]) -> None:
        """Add rows (ids ascending, above max_id); capacity doubles when full."""
        n = len(ids)
        if n == 0:
            return
        needed = self._size + n
        if needed > len(self._ids):
            capacity = max(needed, 2 * len(self._ids), 1024)
            self._ids = _grow(self._ids, capacity)
            self._matrix = _grow(self._matrix, capacity)
            self._namespaces = _grow(self._namespaces, capacity)
        self._ids[self._size : needed] = ids
        self._matrix[self._size : needed] = matrix
        self._namespaces[self._size : needed] = namespaces
        self._size = needed
        self._namespace_masks.clear()

    def retain(self, alive: np.ndarray) -> None:
        """Drop rows whose ids are no longer in the store (forgotten memories)."""
        keep = np.isin(self.ids, alive, assume_unique=True)
        if keep.all():
            return
        self._ids = self.ids[keep].copy()
        self._matrix = self._matrix[: self._size][keep].copy()
        self._namespaces = self._namespaces[: self._size][keep].copy()
        self._size = len(self._ids)
        self._namespace_masks.clear()

    def search(self, query: np.ndarray, k: int, namespace: str | None = None) -> list[tuple[int, float]]:
        if self._size == 0 or k <= 0:
            return []
        scores = self._matrix[: self._size] @ np.asarray(query, dtype=np.float32)
        if namespace is not None:
            mask = self._namespace_masks.get(namespace)
            if mask is None:
                mask = self._namespace_masks[namespace] = self._namespaces[: self._size] == namespace
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self._ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]

    def rank_among(self, query: np.ndarray, ids: list[int]) -> list[int]:
        """The given ids (those still indexed), best inner product first: a reranking that
        reads a few rows instead of the whole matrix."""
        if self._size == 0 or not ids:
            return []
        wanted = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(self.ids, wanted)  # ids are kept ascending
        inside = rows < self._size
        rows, wanted = rows[inside], wanted[inside]
        rows = rows[self._ids[rows] == wanted]  # drop ids no longer indexed
        scores = self._matrix[rows] @ np.asarray(query, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")
        return [int(self._ids[rows[i]]) for i in order]


def _grow(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
