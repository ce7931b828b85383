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
In fp32 training it is the same kernel. Either way it keeps less for the backward pass than
transformers' sdpa (`sdpa_in_fp32`: grouped keys and values unrepeated, one float mask per batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


FP32_SDPA = "sdpa_fp32"  # sdpa_in_fp32 below
# the same in fp32 through transformers' sdpa, which repeats grouped keys and values to every
# query head: what FP32_SDPA ran before it kept them unrepeated (more memory, about the same time)
REPEATED_KV_FP32_SDPA = "sdpa_fp32_repeated_kv"
# the kernels a user may name for training (`sleep --attention`, `bench --attention`): the
# model's default, the fp32 ones measured faster on packed rows, and plain matmuls; others
# exist in transformers but were never measured here
TRAINING_ATTENTION_KERNELS = (FP32_SDPA, REPEATED_KV_FP32_SDPA, "sdpa", "eager")
DEFAULT_TRAINING_ATTENTION = FP32_SDPA


def sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                 scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> Any:
    """PyTorch's fused attention with autocast off and its inputs in fp32; the output is handed
    back in the queries' dtype and layout (batch, time, heads, dim), as transformers' sdpa would.

    Two differences from transformers' sdpa, both in what the backward pass keeps, not in what
    is computed. Grouped-query keys and values go to the kernel as they are (`enable_gqa`), where
    transformers repeats them to every query head whenever there is a mask, as packed rows always
    have: the kernel then keeps 3 heads of keys and values for SmolLM2's 9 query heads, not 9.
    And a boolean block mask is turned into the kernel's additive float mask once per batch, not
    once per layer (each layer's backward kept its own float copy)."""
    import torch
    import torch.nn.functional as F

    from lifelong.learn.cached_prompts import active_step

    groups = int(getattr(module, "num_key_value_groups", 1) or 1)
    step = active_step()
    if step is not None:  # a two-pass training step (learn/cached_prompts.py) masks and caches itself
        with torch.autocast(query.device.type, enabled=False):
            output = step.attend(module, query.float(), key.float(), value.float(), scaling, groups > 1)
        return output.transpose(1, 2).contiguous().to(query.dtype), None
    if kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        return transformers_sdpa_in_fp32(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = bool(query.shape[2] > 1 and attention_mask is None and causal)
    with torch.autocast(query.device.type, enabled=False):
        mask = additive_mask(attention_mask) if attention_mask is not None else None
        output = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask,
                                                dropout_p=dropout, scale=scaling, is_causal=causal,
                                                enable_gqa=groups > 1)
    return output.transpose(1, 2).contiguous().to(query.dtype), None


def transformers_sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                              scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> Any:
    """transformers' own sdpa in fp32: what `sdpa_in_fp32` falls back to for what it does not
    handle (position biases, soft-capped logits), and what it did before keeping grouped keys
    and values unrepeated (`benchmarks/trainer_variants.py --variant repeated-kv` times the two)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    with torch.autocast(query.device.type, enabled=False):
        if attention_mask is not None and attention_mask.dtype != torch.bool:
            attention_mask = attention_mask.float()
        output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                                 dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs)
    return output.to(query.dtype), weights


_last_mask: tuple[Any, Any] | None = None  # (a boolean mask, its additive fp32 form): the layers of a batch share it


def additive_mask(mask: Any) -> Any:
    """`mask` as an fp32 additive mask (0 where attended, the most negative float where not); a
    boolean mask handed in again (every layer of one forward pass) gets the same tensor back."""
    import torch

    global _last_mask
    if mask.dtype != torch.bool:
        return mask.float()
    if _last_mask is not None and _last_mask[0] is mask:
        return _last_mask[1]
    additive = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, torch.finfo(torch.float32).min)
    _last_mask = (mask, additive)
    return additive


def register_fp32_sdpa() -> None:
    """Make "sdpa_fp32" (and its repeated-keys form) kernels transformers models can switch to
    (idempotent; done when a training run asks for one, not at import).

    Each is registered with sdpa's mask builder too. transformers builds no mask for a kernel
    it has no mask builder for, so a padded batch given a 2-D attention mask (generation,
    scoring) reached the kernel with none and its tokens attended to the padding: a module
    scored between epochs inside the training loop (`train_module`'s `after_epoch`) answered
    padded prompts wrongly. Training passes its own 4-D block mask, which is used as given."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(FP32_SDPA, sdpa_in_fp32)
    AttentionInterface.register(REPEATED_KV_FP32_SDPA, transformers_sdpa_in_fp32)
    for kernel in (FP32_SDPA, REPEATED_KV_FP32_SDPA):
        ALL_MASK_ATTENTION_FUNCTIONS.register(kernel, sdpa_mask)


def attention_implementation(causal_lm: Any) -> str:
    """The attention kernel a transformers model runs now ("sdpa", "eager", ...)."""
    return str(getattr(causal_lm.config, "_attn_implementation", None) or "sdpa")


@contextlib.contextmanager
def training_attention(causal_lm: Any, implementation: str | None) -> Iterator[str]:
    """Inside the block `causal_lm` runs `implementation` (None: unchanged); yields the one in
    effect. A model that cannot switch (not a transformers model) is left as it is."""
    if implementation in (FP32_SDPA, REPEATED_KV_FP32_SDPA):
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
        forget_mask()


def forget_mask() -> None:
    """Drop the float mask `additive_mask` keeps for the next layer (once training is over)."""
    global _last_mask
    _last_mask = None
