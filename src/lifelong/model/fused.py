"""Product-of-experts decoding: two prompts, each under its own weights, one answer.

When a question a module learned arrives with retrieved notes, two readers know something:
the base weights reading the notes (what retrieval alone gives) and the module answering
closed-book (what sleep put into the weights). Neither dominates: on 30 TOFU facts each got
questions right that the other missed. Greedy decoding on the sum of their next-token
log-probabilities (a product of the two distributions) lets a confident expert carry a token
the other is unsure of, so a module adds to reading notes instead of replacing it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch


def _left_pad(rows: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


class _Stream:
    """One expert's incremental decoding state: its weights, cache and attention mask."""

    def __init__(self, model: Any, weights: contextlib.AbstractContextManager[Any], rows: Sequence[list[int]], pad: int) -> None:
        self.model, self.weights = model, weights
        self.next_ids, self.mask = _left_pad(rows, pad)
        self.cache: Any = None

    def log_probs(self) -> torch.Tensor:
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)[:, -self.next_ids.shape[1]:]
        with self.weights:
            out = self.model(input_ids=self.next_ids, attention_mask=self.mask, position_ids=positions,
                             past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def append(self, tokens: torch.Tensor) -> None:
        self.next_ids = tokens.unsqueeze(-1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.next_ids)], dim=-1)


@torch.inference_mode()
def product_of_experts(model: Any, experts: Sequence[tuple[contextlib.AbstractContextManager[Any], Sequence[list[int]]]],
                       stop_ids: Sequence[int], pad: int, max_new_tokens: int, temperature: float = 0.0,
                       seed: int = 0) -> list[list[int]]:
    """New token ids per row, decoded from the summed log-probs of every expert, where an
    expert is (weights to run under, one prompt per row). Greedy by default; with a
    temperature, sampled from the product with a fixed seed."""
    streams = [_Stream(model, weights, rows, pad) for weights, rows in experts]
    batch = streams[0].next_ids.shape[0]
    generator = torch.Generator().manual_seed(seed)
    stops = torch.tensor(sorted(set(stop_ids)))
    done = torch.zeros(batch, dtype=torch.bool)
    answers: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_new_tokens):
        joint = sum(stream.log_probs() for stream in streams)
        if temperature > 0:
            tokens = torch.multinomial(torch.softmax(joint / temperature, dim=-1), 1, generator=generator).squeeze(-1)
        else:
            tokens = joint.argmax(dim=-1)
        done |= torch.isin(tokens, stops)
        for row in range(batch):
            if not done[row]:
                answers[row].append(int(tokens[row]))
        if bool(done.all()):
            break
        tokens = torch.where(done, torch.full_like(tokens, pad), tokens)
        for stream in streams:
            stream.append(tokens)
    return answers
