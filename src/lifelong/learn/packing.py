"""Pack short training examples into shared rows without letting them see each other.

Synthesised examples are short (20-80 tokens) and vary in length; padding each to the
longest in its batch wastes compute. Packing concatenates examples into rows of up to
`capacity` tokens, restarts position ids at each example, and builds a block-diagonal causal
mask, so every example is computed exactly as it would be alone (tests/test_training.py
checks the loss is the same packed and unpacked).

Most examples of a sleep open with the same tokens: the chat template and its system prompt
(about 20 tokens before a closed-book question, 50 before notes), a fifth to a quarter of a
sleep's tokens. With `share_prefixes`, the examples of a row that open alike are laid out
after one copy of their common opening, which each of them attends to as if it were its own:
the opening is causal and sees nothing else, so its hidden states are the ones each example
would compute alone, and the gradients that flow into it add up as the copies' would. The
loss and gradients are those of the examples computed one by one, up to float rounding, for
fewer tokens (tests/test_training.py).
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
    tokens: int  # real (non-pad) tokens computed: shared openings count once


def _common_length(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def shared_prefix(row: Sequence[Segment]) -> int:
    """Leading tokens every segment of the row has in common, stopping before each one's
    first answer prediction (position start - 1 stays the segment's own); 0 for a lone segment."""
    if len(row) < 2:
        return 0
    lead = row[0][0]
    limit = min(start for _, start in row) - 1
    return min(_common_length(lead, ids, limit) for ids, _ in row[1:])


def row_tokens(row: Sequence[Segment], share_prefixes: bool) -> int:
    """Positions the row takes once laid out."""
    shared = shared_prefix(row) if share_prefixes else 0
    return sum(len(ids) for ids, _ in row) - (len(row) - 1) * shared


def pack_rows(segments: Sequence[Segment], capacity: int | None, share_prefixes: bool = False) -> list[list[Segment]]:
    """Longest examples first, each into the row with room where it adds the fewest positions
    (the first such row on a tie), or a row of its own when none has room. Without
    `share_prefixes` every row adds the example's whole length: first-fit decreasing."""
    if not capacity:
        return [[s] for s in segments]
    rows: list[list[Segment]] = []
    sizes: list[int] = []
    for segment in sorted(segments, key=lambda s: len(s[0]), reverse=True):
        size = len(segment[0])
        best, best_added = None, size + 1  # any row with room beats a row of its own: no padding
        for i, row in enumerate(rows):
            grown = row_tokens([*row, segment], share_prefixes)
            if grown <= max(capacity, size) and grown - sizes[i] < best_added:
                best, best_added = i, grown - sizes[i]
        if best is None:
            rows.append([segment])
            sizes.append(size)
        else:
            rows[best].append(segment)
            sizes[best] = row_tokens(rows[best], share_prefixes)
    return rows


def build_batch(segments: Sequence[Segment], pad_id: int, capacity: int | None, eager_attention: bool = False,
                share_prefixes: bool = False, block_mask: bool = False) -> PackedBatch:
    """The segments packed into rows; `block_mask` asks for the (rows, 1, width, width) boolean
    mask even where every row holds one segment (a padding mask would do there otherwise)."""
    rows = pack_rows(segments, capacity, share_prefixes)
    width = max(row_tokens(row, share_prefixes) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), -100)
    padding = torch.zeros((len(rows), width), dtype=torch.long)
    block = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)  # pads attend to themselves: no empty rows
    for r, row in enumerate(rows):
        shared = shared_prefix(row) if share_prefixes else 0
        if shared:  # the common opening, once, attended to by every segment of the row
            input_ids[r, :shared] = torch.tensor(row[0][0][:shared])
            position_ids[r, :shared] = torch.arange(shared)
            padding[r, :shared] = 1
            block[r, :shared, :shared] = torch.ones(shared, shared, dtype=torch.bool).tril()
        offset = shared
        for ids, start in row:
            own = ids[shared:]
            end = offset + len(own)
            input_ids[r, offset:end] = torch.tensor(own)
            position_ids[r, offset:end] = torch.arange(shared, len(ids))
            targets[r, offset + start - 1 - shared : end - 1] = torch.tensor(ids[start:])  # position t predicts t+1
            padding[r, offset:end] = 1
            block[r, offset:end, offset:end] = torch.ones(len(own), len(own), dtype=torch.bool).tril()
            block[r, offset:end, :shared] = True
            offset = end
    if all(len(row) == 1 for row in rows) and not block_mask:
        mask = padding  # nothing shares a row: the model's own causal + padding mask is exact
    elif eager_attention:
        mask = torch.zeros(block.shape).masked_fill(~block, torch.finfo(torch.float32).min)[:, None]
    else:
        mask = block[:, None]
    return PackedBatch(input_ids, position_ids, mask, targets, int(padding.sum()))
