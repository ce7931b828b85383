"""Exact inner-product search over unit vectors held in RAM.

Exact search is a single matrix-vector product: at 100k x 384 float32 it is a few ms on
two cores, so an approximate index would add recall loss and a dependency for no gain at
the sizes one mind reaches. The benchmark in benchmarks/retrieval_latency.py measures it.
"""

from __future__ import annotations

import numpy as np


class VectorIndex:
    def __init__(self, ids: np.ndarray, matrix: np.ndarray, namespaces: list[str]) -> None:
        self.ids = ids
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.namespaces = np.asarray(namespaces, dtype=object)
        self._namespace_masks: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, k: int, namespace: str | None = None) -> list[tuple[int, float]]:
        if len(self.ids) == 0 or k <= 0:
            return []
        scores = self.matrix @ np.asarray(query, dtype=np.float32)
        if namespace is not None:
            mask = self._namespace_masks.get(namespace)
            if mask is None:
                mask = self._namespace_masks[namespace] = self.namespaces == namespace
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if np.isfinite(scores[i])]
