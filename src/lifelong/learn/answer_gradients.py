"""Train a module through the scored positions only, not through the prompts it reads.

Why: three quarters of a sleep's trained tokens are prompts (the chat template, the question, a
cloze's whole statement) and a quarter are answers (the 100-fact TOFU sleep's examples). The
backward pass runs over every position, though the loss is only on the answers. A trainer that
ran the prompts forward without gradients (their keys and values kept, as a cache) and only the
scored positions forward and backward would skip most of the backward pass, if a module still
learns its facts that way: on SQuAD passages and the 10x10 TOFU study it answered as many
(README, "Answer gradients only").

The hooks here define that gradient: each LoRA layer's output passes gradient at the scored
positions (those whose next token is an answer token) and none at the others. The forward
values are unchanged, and no LoRA weight receives gradient from a prompt's position, though
gradients still pass between positions through attention. learn/cached_prompts.py computes the
same gradient in two passes, for less (tests compare the two, and these hooks with a cached
prompt). The hooks run where the two passes cannot: compiled layers, gradient checkpointing
and attention kernels other than the training default, at an ordinary step's cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def lora_output_layers(causal_lm: Any) -> list[torch.nn.Module]:
    """Every active adapter's `lora_B` projection: the last layer of each LoRA branch."""
    from peft.tuners.lora import LoraLayer

    layers = []
    for module in causal_lm.modules():
        if isinstance(module, LoraLayer):
            layers += [module.lora_B[name] for name in module.active_adapters if name in module.lora_B]
    return layers


@contextmanager
def gradients_at(causal_lm: Any, scored: torch.Tensor | None) -> Iterator[None]:
    """Inside, every LoRA branch's output carries gradient only at `scored` positions
    ((rows, width) bool, the packed batch's positions with a loss); None changes nothing."""
    if scored is None:
        yield
        return
    keep = scored[..., None]

    def cut(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return torch.where(keep, output, output.detach())

    handles = [layer.register_forward_hook(cut) for layer in lora_output_layers(causal_lm)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
