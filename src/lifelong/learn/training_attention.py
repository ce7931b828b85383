"""Run a model's attention through another of transformers' kernels for one training run.

Serving and the gate use PyTorch's fused `scaled_dot_product_attention` ("sdpa"). Training is
different: a sleep trains on rows packed from several short examples (learn/packing.py), so
every row carries a block-diagonal mask, and on a CPU the fused kernel's backward pass with a
mask was the largest single item of a profiled training step (README, issue 16).
transformers' "eager" attention (two matrix products and a softmax) computes the same function
with ordinary matmuls; `benchmarks/trainer_variants.py --variant eager-attention` times the two
on a real sleep's examples. The previous implementation is restored on exit, even after an
error, so what follows the training loop runs exactly as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


# the kernels a user may name for training (`sleep --attention`, `bench --attention`): the
# model's default and the one measured faster on packed rows; others exist in transformers but
# were never measured here
TRAINING_ATTENTION_KERNELS = ("sdpa", "eager")


def attention_implementation(causal_lm: Any) -> str:
    """The attention kernel a transformers model runs now ("sdpa", "eager", ...)."""
    return str(getattr(causal_lm.config, "_attn_implementation", None) or "sdpa")


@contextlib.contextmanager
def training_attention(causal_lm: Any, implementation: str | None) -> Iterator[str]:
    """Inside the block `causal_lm` runs `implementation` (None: unchanged); yields the one in
    effect. A model that cannot switch (not a transformers model) is left as it is."""
    before = attention_implementation(causal_lm)
    if not implementation or implementation == before or not hasattr(causal_lm, "set_attn_implementation"):
        yield before
        return
    causal_lm.set_attn_implementation(implementation)
    try:
        yield attention_implementation(causal_lm)
    finally:
        causal_lm.set_attn_implementation(before)
