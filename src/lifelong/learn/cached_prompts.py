"""A training step that runs the prompts forward once without gradients, and only the scored
positions forward and backward.

Why: about three quarters of a sleep's trained tokens are prompts, yet the ordinary step runs
its backward pass over every position. With `TrainConfig.answer_gradients_only` a module takes
no gradient from the prompts' positions (learn/answer_gradients.py); then their keys and values
are constants to the loss, and computing them in a no-grad pass, as a cache, gives the same
gradient for a backward pass over the scored positions only (those whose next token is an
answer token: a quarter to a third of the positions).

Pass 1 runs the packed batch through the model under `torch.no_grad()` and keeps each layer's
keys and values (after the rotary embedding). Pass 2 runs only the scored tokens, at their own
positions, with gradients; in each layer their queries attend to the pass-1 keys and values of
their row, with the scored positions' entries replaced by pass 2's own (differentiable) keys and
values, under the rows of the packed block mask that belong to them. The forward values are the
ordinary step's; the gradient is `answer_gradients_only`'s, which tests check.

The attention hook lives in learn/training_attention.py's fp32 kernel (the training default),
which asks `active_step()` here whether a two-pass step is running.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class TwoPassStep:
    """One packed batch's state between the passes."""

    mask: torch.Tensor  # (rows, 1, width, width) bool block mask of the packed batch
    rows: torch.Tensor  # (scored,) row of each scored position
    columns: torch.Tensor  # (scored,) its position in the packed row
    slots: torch.Tensor  # (scored,) its place among its row's scored positions in pass 2
    width: int  # pass 2's row length: the most scored positions in a row
    recording: bool = True  # pass 1 (no gradients, keys and values kept) or pass 2
    keys: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    pass2_mask: torch.Tensor | None = None  # (rows, 1, width, packed width) additive

    def attend(self, module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float | None, gqa: bool) -> torch.Tensor:
        """Pass 1: ordinary masked attention, keys and values kept. Pass 2: the scored queries
        over their rows' cached keys and values, their own spliced in. (rows, heads, time, dim)."""
        layer = int(module.layer_idx)
        if self.recording:
            self.keys[layer] = (key.detach(), value.detach())
            return F.scaled_dot_product_attention(query, key, value, attn_mask=additive(self.mask), scale=scaling, enable_gqa=gqa)
        cached_key, cached_value = self.keys[layer]
        full_key = _spliced(cached_key, key, self.rows, self.columns, self.slots)
        full_value = _spliced(cached_value, value, self.rows, self.columns, self.slots)
        return F.scaled_dot_product_attention(query, full_key, full_value, attn_mask=self.pass2_mask, scale=scaling, enable_gqa=gqa)


def _spliced(cached: torch.Tensor, own: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor,
             slots: torch.Tensor) -> torch.Tensor:
    """`cached` (rows, heads, width, dim) with the scored positions' entries taken from `own`
    (rows, heads, pass-2 width, dim), differentiably."""
    full = cached.transpose(1, 2).clone()
    full[rows, columns] = own.transpose(1, 2)[rows, slots].to(full.dtype)
    return full.transpose(1, 2)


def additive(mask: torch.Tensor) -> torch.Tensor:
    return torch.zeros(mask.shape, dtype=torch.float32).masked_fill_(~mask, torch.finfo(torch.float32).min)


_active: TwoPassStep | None = None


def active_step() -> TwoPassStep | None:
    """The two-pass step running now, for the attention kernel; None outside one."""
    return _active


@contextmanager
def _running(step: TwoPassStep) -> Iterator[None]:
    global _active
    _active = step
    try:
        yield
    finally:
        _active = None


def scored_hidden_states(causal_lm: Any, input_ids: torch.Tensor, position_ids: torch.Tensor, block_mask: torch.Tensor,
                         scored: torch.Tensor) -> torch.Tensor:
    """The last hidden states at the `scored` positions ((rows, width) bool), in the order
    `hidden[scored]` lists them, computed in two passes (see the module docstring).
    `block_mask` is the packed batch's (rows, 1, width, width) boolean mask."""
    rows, columns = scored.nonzero(as_tuple=True)
    counts = scored.sum(dim=1)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.arange(len(rows)) - starts[rows]
    width = int(counts.max()) if len(rows) else 0
    step = TwoPassStep(block_mask, rows, columns, slots, width)
    with _running(step):
        with torch.no_grad():
            causal_lm.model(input_ids=input_ids, attention_mask=block_mask, position_ids=position_ids, use_cache=False)
        step.recording = False
        pass2_ids = torch.zeros((scored.shape[0], width), dtype=input_ids.dtype)
        pass2_positions = torch.zeros((scored.shape[0], width), dtype=position_ids.dtype)
        pass2_ids[rows, slots] = input_ids[rows, columns]
        pass2_positions[rows, slots] = position_ids[rows, columns]
        allowed = torch.zeros((scored.shape[0], 1, width, scored.shape[1]), dtype=torch.bool)
        allowed[:, :, :, 0] = True  # a padding slot attends to its row's first position: no empty row, no loss
        allowed[rows, :, slots] = block_mask[rows, :, columns]
        step.pass2_mask = additive(allowed)
        hidden = causal_lm.model(input_ids=pass2_ids, position_ids=pass2_positions, use_cache=False).last_hidden_state
    return hidden[rows, slots]
