"""Data-parallel sleep: the same training run split across processes started by `torchrun`
(or `accelerate launch`), gradients summed so the result is the one-process run's.

Each global batch is the one a single process would take; rank r trains on every world-th
example of it. A rank's loss is its answer tokens' summed cross-entropy divided by the whole
batch's answer-token count (and likewise the teacher term), plus 1/world of the terms every
rank computes identically (anchor KL, EWC), so the summed gradients are exactly the
one-process gradient up to float rounding: the tests hold the two modules to a stated
tolerance. gloo on CPU, NCCL on GPUs. Rank 0 alone selects, synthesises, gates and commits;
the other ranks receive its training data and only train.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def launched() -> bool:
    """Started by torchrun / accelerate launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start() -> None:
    """Join the process group torchrun set up (once per process); a no-op for one process."""
    if not launched():
        return
    dist = _dist()
    if not dist.is_initialized():
        import torch

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def stop() -> None:
    """Leave the process group together: a rank that tore its group down while rank 0 was still
    gating aborted once in the test suite ("terminate called without an active exception")."""
    if launched() and _dist().is_initialized():
        _dist().barrier()
        _dist().destroy_process_group()


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def shard(batch: Sequence[T]) -> list[T]:
    """This rank's part of a global batch: every world-th example."""
    return list(batch[rank()::world_size()])


def sums(*values: float) -> list[float]:
    """Each value summed over all ranks (one collective)."""
    import torch

    if world_size() == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    _dist().all_reduce(tensor)
    return tensor.tolist()


def sum_gradients(params: Sequence[Any]) -> None:
    """Replace each parameter's gradient by the sum over ranks (a missing one counts as zero)."""
    import torch

    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    _dist().all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        count = g.numel()
        p.grad = flat[offset:offset + count].view_as(p).to(p.dtype)
        offset += count


def from_main(value: T | None) -> T | None:
    """Rank 0's `value` on every rank (what it selected and synthesised, or None: nothing to do)."""
    if world_size() == 1:
        return value
    box = [value]
    _dist().broadcast_object_list(box, src=0)
    return box[0]
