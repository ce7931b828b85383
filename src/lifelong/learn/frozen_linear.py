"""Keep no bf16 copy of a frozen weight for the backward pass: cast it again there.

Under bf16 autocast every linear layer casts its fp32 weight to bf16, and autograd keeps that
copy for the backward pass (the input's gradient is the output's gradient times the weight).
A LoRA sleep trains none of the base's weights, so those copies are all of the base in bf16
held at once: 835 tensors, 320 MiB, the largest single part of a training step's live tensors
at its peak (a census of every operation's outputs still alive, one epoch of a 3-fact sleep's
examples on SmolLM2-135M, scratch measurement; README, "Peak memory in bf16").

`FrozenLinear` keeps a reference to the fp32 weight instead (the parameter itself: no bytes)
and casts it to bf16 again in the backward pass. The forward pass runs the same bf16 product
autocast runs, and the backward pass the same bf16 product on the same bf16 numbers, so the
gradients are the same; the cost is one more cast per layer and step. Only frozen layers (no
weight gradient, no bias gradient) switch, and only while bf16 autocast is on: in fp32 nothing
is copied in the first place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F


class FrozenLinear(torch.autograd.Function):
    """x W^T (+ b) in bf16, keeping the fp32 weight (not its bf16 copy) for the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.input_dtype = x.dtype
        with torch.autocast("cpu", enabled=False):
            return F.linear(x.to(torch.bfloat16), weight.to(torch.bfloat16),
                            bias.to(torch.bfloat16) if bias is not None else None)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (weight,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        grad_input = torch.matmul(grad.to(torch.bfloat16), weight.to(torch.bfloat16))
        return grad_input.to(ctx.input_dtype), None, None


def frozen_linears(model: Any) -> list[torch.nn.Linear]:
    """The model's plain linear layers whose weight and bias take no gradient."""
    return [module for module in model.modules()
            if type(module) is torch.nn.Linear and not module.weight.requires_grad
            and (module.bias is None or not module.bias.requires_grad)]


def recasting_forward(layer: torch.nn.Linear) -> Any:
    original = type(layer).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            return FrozenLinear.apply(x, layer.weight, layer.bias)
        return original(layer, x)

    return forward


@contextlib.contextmanager
def recast_frozen_weights(model: Any, enabled: bool = True) -> Iterator[bool]:
    """Inside the block the model's frozen linear layers keep no bf16 weight copy for the
    backward pass under bf16 autocast; yields whether any layer was switched. Restored on
    exit, even after an error."""
    layers = frozen_linears(model) if enabled else []
    for layer in layers:
        layer.forward = recasting_forward(layer)  # an instance attribute shadows the class's forward
    try:
        yield bool(layers)
    finally:
        for layer in layers:
            vars(layer).pop("forward", None)
