"""Keep less of a gated MLP for the backward pass: recompute its activation there.

A gated MLP (Llama, Qwen, Gemma) computes down(act(gate(x)) * up(x)). Autograd keeps three
intermediate-width tensors for it: gate(x) for the activation's gradient, and act(gate(x)) and
up(x) for the product's. The middle one is a cheap function of the first, so `GatedProduct`
keeps gate(x) and up(x) and recomputes the activation in the backward pass, with the same
operations: the gradients are the same numbers, one elementwise activation per layer later.

On SmolLM2-135M (intermediate width 1536, hidden 576) the three tensors were 40% of what a
training step keeps for its backward pass (a census of the tensors saved for a real 3-fact
sleep's batch in fp32: 264 of 658 MiB; README, issue 16), so dropping one saves 13%. Inside
`recomputed_gated_activations` the MLPs of the architectures listed below run this way; others
are left as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

# MLP classes whose forward is exactly down_proj(act_fn(gate_proj(x)) * up_proj(x))
GATED_MLP_CLASSES = frozenset({"LlamaMLP", "MistralMLP", "Qwen2MLP", "Qwen3MLP", "GemmaMLP", "Gemma2MLP", "Gemma3MLP"})


class GatedProduct(torch.autograd.Function):
    """act(gate) * up, keeping gate and up (not act(gate)) for the backward pass."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor, activation: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.activation = activation
        ctx.save_for_backward(gate, up)
        return activation(gate) * up

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        gate, up = ctx.saved_tensors
        with torch.enable_grad():
            leaf = gate.detach().requires_grad_(True)
            activated = ctx.activation(leaf)
        grad_up = grad * activated.detach() if ctx.needs_input_grad[1] else None
        grad_gate = torch.autograd.grad(activated, leaf, grad * up)[0] if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up, None


def gated_mlps(model: Any) -> list[torch.nn.Module]:
    return [module for module in model.modules() if type(module).__name__ in GATED_MLP_CLASSES]


def recomputing_forward(mlp: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return mlp.down_proj(GatedProduct.apply(mlp.gate_proj(x), mlp.up_proj(x), mlp.act_fn))

    return forward


@contextlib.contextmanager
def recomputed_gated_activations(model: Any, enabled: bool = True) -> Iterator[bool]:
    """Inside the block the model's gated MLPs keep gate(x) and up(x) only and recompute the
    activation in the backward pass; yields whether any MLP was switched. Restored on exit,
    even after an error."""
    mlps = gated_mlps(model) if enabled else []
    for mlp in mlps:
        mlp.forward = recomputing_forward(mlp)  # an instance attribute shadows the class's forward
    try:
        yield bool(mlps)
    finally:
        for mlp in mlps:
            vars(mlp).pop("forward", None)
