"""Context distillation on soft targets: the teacher is the frozen model with the memory in its
prompt, the student the module without it.

Hard-answer fine-tuning teaches one sampled answer; the teacher's full next-token distribution
over that answer (teacher-forced) also says which other words it found plausible given the
note, which is what "knowing the fact" looks like inside the model. For each closed-book
example built from one memory, the frozen model reads `build_messages(question, [memory])`
followed by the example's answer; its top-k log-probs at every answer position are cached once
per sleep, and training adds the cross-entropy of the student's distribution to them at the same
answer tokens (Snell et al. 2022, "Learning by distilling context"; Hinton et al. 2015).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lifelong.learn.packing import Segment, pack_rows
from lifelong.learn.synthesis import TrainingExample
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import SYSTEM_WITHOUT_MEMORY, build_messages

TOP_K = 16


@dataclass(frozen=True)
class SoftTargets:
    indices: torch.Tensor  # (answer tokens, k) token ids the teacher ranks highest
    log_probs: torch.Tensor  # (answer tokens, k) the teacher's log-probs of them


def teacher_prompt(example: TrainingExample, memories: Mapping[int, Memory]) -> list[dict[str, str]] | None:
    """The example's question with its memory in the prompt, or None where it has no single
    memory or already carries notes (context rows)."""
    if len(example.memory_ids) != 1 or example.memory_ids[0] not in memories:
        return None
    if example.prompt[0]["role"] != "system" or example.prompt[0]["content"] != SYSTEM_WITHOUT_MEMORY:
        return None
    return build_messages(example.prompt[-1]["content"], [memories[example.memory_ids[0]]])


@torch.no_grad()  # not inference_mode: the targets enter the training graph as constants
def teacher_targets(lm: LanguageModel, examples: Sequence[TrainingExample], segments: Sequence[Segment | None],
                    memories: Mapping[int, Memory], max_length: int, k: int = TOP_K) -> dict[int, SoftTargets]:
    """Soft targets per example index, for the examples whose segment exists and whose teacher
    prompt fits in `max_length` tokens. `lm` must be the frozen model (no adapter)."""
    targets: dict[int, SoftTargets] = {}
    for index, (example, segment) in enumerate(zip(examples, segments, strict=True)):
        prompt = teacher_prompt(example, memories) if segment is not None else None
        if prompt is None:
            continue
        ids, start = segment
        answer = ids[start:]
        context = lm.encode(lm.format_chat(prompt))
        row = context + answer
        if len(row) > max_length:
            continue
        logits = lm.model(input_ids=torch.tensor([row])).logits[0, len(context) - 1 : len(row) - 1].float()
        top = F.log_softmax(logits, dim=-1).topk(min(k, logits.shape[-1]), dim=-1)
        targets[index] = SoftTargets(top.indices, top.values)
    return targets


def soft_cross_entropy(logits: torch.Tensor, batch: Sequence[Segment], capacity: int | None,
                       targets: Mapping[int, SoftTargets], share_prefixes: bool = False) -> tuple[torch.Tensor, int] | None:
    """Cross-entropy of the student's answer-position distributions against the teacher's top-k
    (renormalised), summed over the answer tokens that have targets, with their count. `logits` are the
    student's at the answer positions of `batch` packed as `build_batch` packs it; `targets`
    is keyed by `id()` of each segment object."""
    losses = []
    offset = 0
    for row in pack_rows(batch, capacity, share_prefixes):
        for segment in row:
            count = len(segment[0]) - segment[1]
            soft = targets.get(id(segment))
            if soft is not None:
                student = F.log_softmax(logits[offset : offset + count].float(), dim=-1).gather(-1, soft.indices)
                teacher = torch.softmax(soft.log_probs, dim=-1)
                losses.append(-(teacher * student).sum(-1))
            offset += count
    if not losses:
        return None
    joined = torch.cat(losses)
    return joined.sum(), int(joined.numel())
