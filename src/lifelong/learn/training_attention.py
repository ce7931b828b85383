"""Run a model's attention through another of transformers' kernels for one training run.

Serving and the gate use PyTorch's fused `scaled_dot_product_attention` ("sdpa"). Training is
different: a sleep trains on rows packed from several short examples (learn/packing.py), so
every row carries a block-diagonal mask, and on a CPU the fused kernel's backward pass with a
mask was the largest single item of a profiled training step (README, issue 16).
transformers' "eager" attention (two matrix products and a softmax) computes the same function
with ordinary matmuls; `benchmarks/trainer_variants.py --variant eager-attention` times the two
on a real sleep's examples. The previous implementation is restored on exit, even after an
error, so what follows the training loop runs exactly as before.

The default, "sdpa_fp32", is the fused kernel run in fp32 inside the bf16 autocast of a
training step. The rotary embedding already hands attention fp32 queries and keys; autocast
used to cast them (and the values) to bf16 for the kernel, whose bf16 backward pass with a
mask is slower on this CPU than its fp32 one (a packed batch's attention, forward and
backward: 14.8 against 10.3 ms). Skipping the casts is both faster (1.10-1.25x a training
run, alternated A/B, `benchmarks/trainer_variants.py --variant bf16-attention`) and exacter.
In fp32 training it is plain sdpa.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


# the kernels a user may name for training (`sleep --attention`, `bench --attention`): the
# model's default and the one measured faster on packed rows; others exist in transformers but
# were never measured here
FP32_SDPA = "sdpa_fp32"
TRAINING_ATTENTION_KERNELS = (FP32_SDPA, "sdpa", "eager")
DEFAULT_TRAINING_ATTENTION = FP32_SDPA


def sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, *args: Any, **kwargs: Any) -> Any:
    """transformers' sdpa attention with autocast off and its inputs in fp32; the output is
    handed back in the queries' dtype, as the kernel under autocast would."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    with torch.autocast(query.device.type, enabled=False):
        if attention_mask is not None and attention_mask.dtype != torch.bool:
            attention_mask = attention_mask.float()
        output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                                 *args, **kwargs)
    return output.to(query.dtype), weights


def register_fp32_sdpa() -> None:
    """Make "sdpa_fp32" a kernel transformers models can switch to (idempotent; done when a
    training run asks for it, not at import)."""
    from transformers import AttentionInterface

    AttentionInterface.register(FP32_SDPA, sdpa_in_fp32)


def attention_implementation(causal_lm: Any) -> str:
    """The attention kernel a transformers model runs now ("sdpa", "eager", ...)."""
    return str(getattr(causal_lm.config, "_attn_implementation", None) or "sdpa")


@contextlib.contextmanager
def training_attention(causal_lm: Any, implementation: str | None) -> Iterator[str]:
    """Inside the block `causal_lm` runs `implementation` (None: unchanged); yields the one in
    effect. A model that cannot switch (not a transformers model) is left as it is."""
    if implementation == FP32_SDPA:
        register_fp32_sdpa()
    before = attention_implementation(causal_lm)
    if not implementation or implementation == before or not hasattr(causal_lm, "set_attn_implementation"):
        yield before
        return
    causal_lm.set_attn_implementation(implementation)
    try:
        yield attention_implementation(causal_lm)
    finally:
        causal_lm.set_attn_implementation(before)
