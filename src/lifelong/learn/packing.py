"""Pack short training examples into shared rows without letting them see each other.

Synthesised examples are short (20-80 tokens) and vary in length; padding each to the
longest in its batch wastes compute. Packing concatenates examples into rows of up to
`capacity` tokens, restarts position ids at each example, and builds a block-diagonal causal
mask, so every example is computed exactly as it would be alone (tests/test_training.py
checks the loss is the same packed and unpacked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Segment = tuple[list[int], int]  # token ids, index where the answer starts


@dataclass(frozen=True)
class PackedBatch:
    input_ids: torch.Tensor  # (rows, width)
    position_ids: torch.Tensor  # (rows, width)
    attention_mask: torch.Tensor  # (rows, width) padding mask, or (rows, 1, width, width) block mask
    targets: torch.Tensor  # (rows, width); -100 where no loss
    tokens: int  # real (non-pad) tokens


def pack_rows(segments: Sequence[Segment], capacity: int | None) -> list[list[Segment]]:
    """First-fit decreasing: longest examples first, each into the first row with room."""
    if not capacity:
        return [[s] for s in segments]
    rows: list[list[Segment]] = []
    room: list[int] = []
    for segment in sorted(segments, key=lambda s: len(s[0]), reverse=True):
        size = len(segment[0])
        for i, free in enumerate(room):
            if size <= free:
                rows[i].append(segment)
                room[i] -= size
                break
        else:
            rows.append([segment])
            room.append(max(capacity, size) - size)
    return rows


def build_batch(segments: Sequence[Segment], pad_id: int, capacity: int | None, eager_attention: bool = False) -> PackedBatch:
    rows = pack_rows(segments, capacity)
    width = max(sum(len(ids) for ids, _ in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), -100)
    padding = torch.zeros((len(rows), width), dtype=torch.long)
    block = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # pads attend to themselves: no empty rows
    for r, row in enumerate(rows):
        offset = 0
        for ids, start in row:
            end = offset + len(ids)
            input_ids[r, offset:end] = torch.tensor(ids)
            position_ids[r, offset:end] = torch.arange(len(ids))
            targets[r, offset + start - 1 : end - 1] = torch.tensor(ids[start:])  # position t predicts t+1
            padding[r, offset:end] = 1
            block[r, offset:end, offset:end] = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
            offset = end
    if all(len(row) == 1 for row in rows):
        mask = padding  # nothing shares a row: the model's own causal + padding mask is exact
    elif eager_attention:
        mask = torch.zeros(block.shape).masked_fill(~block, torch.finfo(torch.float32).min)[:, None]
    else:
        mask = block[:, None]
    return PackedBatch(input_ids, position_ids, mask, targets, int(padding.sum()))
