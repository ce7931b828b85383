"""A training step that runs the prompts forward once without gradients, and only the scored
positions forward and backward.

Why: about three quarters of a sleep's trained tokens are prompts, yet the ordinary step runs
its backward pass over every position. With `TrainConfig.answer_gradients_only` a module takes
no gradient from the prompts' positions (learn/answer_gradients.py); then their keys and values
are constants to the loss, and computing them in a no-grad pass, as a cache, gives the same
gradient for a backward pass over the scored positions only (those whose next token is an
answer token: a quarter to a third of the positions).

Pass 1 runs, under `torch.no_grad()`, the positions the scored ones read but that are not scored
themselves (the prompts, less each one's last token), all the batch's rows laid end to end in
one row, and keeps each layer's keys and values (after the rotary embedding). Pass 2 runs the
scored positions, laid out the same way, with gradients: in each layer their queries attend to
pass 1's keys and values and to their own, each position only to what the packed block mask let
it see in its own row. Every position is computed once, as in the ordinary step, but only a
quarter to a third of them keep activations and run backward. The forward values are the
ordinary step's; the gradient is `answer_gradients_only`'s, which tests check.

The attention hook lives in learn/training_attention.py's fp32 kernel (the training default),
which asks `active_step()` here whether a two-pass step is running.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.learn.training_attention import additive_mask


@dataclass
class TwoPassStep:
    """One packed batch's state between the passes: each pass's attention mask, and the keys
    and values pass 1 left for pass 2."""

    context_mask: torch.Tensor  # (1, 1, context, context) additive: pass 1's positions among themselves
    scored_mask: torch.Tensor  # (1, 1, scored, context + scored) additive: pass 2's over both
    recording: bool = True  # pass 1 (no gradients, keys and values kept) or pass 2
    keys: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def attend(self, module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float | None, gqa: bool) -> torch.Tensor:
        """Pass 1: the context positions' masked attention, keys and values kept. Pass 2: the
        scored positions over the context's keys and values and their own.
        (batch, heads, time, dim) in and out."""
        layer = int(module.layer_idx)
        if self.recording:
            self.keys[layer] = (key, value)
            return F.scaled_dot_product_attention(query, key, value, attn_mask=self.context_mask, scale=scaling, enable_gqa=gqa)
        context_key, context_value = self.keys.pop(layer)
        return F.scaled_dot_product_attention(query, torch.cat([context_key, key], dim=2), torch.cat([context_value, value], dim=2),
                                              attn_mask=self.scored_mask, scale=scaling, enable_gqa=gqa)


def _visible(block_mask: torch.Tensor, query: tuple[torch.Tensor, torch.Tensor], key: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """(queries, keys) bool: which (row, position) keys each (row, position) query may attend to
    under the packed batch's block mask: the same row, and allowed there."""
    (query_rows, query_columns), (key_rows, key_columns) = query, key
    same_row = query_rows[:, None] == key_rows[None, :]
    return same_row & block_mask[query_rows[:, None], 0, query_columns[:, None], key_columns[None, :]]


_running_here = threading.local()  # per thread: a server may sleep in one thread and answer in others


def active_step() -> TwoPassStep | None:
    """The two-pass step running now in this thread, for the attention kernel; None outside one."""
    return getattr(_running_here, "step", None)


@contextmanager
def _running(step: TwoPassStep) -> Iterator[None]:
    _running_here.step = step
    try:
        yield
    finally:
        _running_here.step = None


def scored_hidden_states(causal_lm: Any, input_ids: torch.Tensor, position_ids: torch.Tensor, block_mask: torch.Tensor,
                         scored: torch.Tensor) -> torch.Tensor:
    """The last hidden states at the `scored` positions ((rows, width) bool), in the order
    `hidden[scored]` lists them, computed in two passes (see the module docstring).
    `block_mask` is the packed batch's (rows, 1, width, width) boolean mask."""
    read = block_mask[:, 0].logical_and(scored[:, :, None]).any(dim=1)  # (rows, width): what some scored position attends to
    context = read & ~scored
    context_at, scored_at = context.nonzero(as_tuple=True), scored.nonzero(as_tuple=True)
    step = TwoPassStep(additive_mask(_visible(block_mask, context_at, context_at))[None, None],
                       additive_mask(torch.cat([_visible(block_mask, scored_at, context_at),
                                           _visible(block_mask, scored_at, scored_at)], dim=1))[None, None])
    with _running(step):
        with torch.no_grad():
            causal_lm.model(input_ids=input_ids[context_at][None], position_ids=position_ids[context_at][None], use_cache=False)
        step.recording = False
        hidden = causal_lm.model(input_ids=input_ids[scored_at][None], position_ids=position_ids[scored_at][None],
                                 use_cache=False).last_hidden_state
    return hidden[0]
