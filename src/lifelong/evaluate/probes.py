"""Held-out acquisition probes and retention probes.

Acquisition probes ask for a memory's salient span with a phrasing that synthesis never
uses ("Complete the sentence: ..."), so a module passes by knowing the fact, not by having
memorised the training prompt. Retention probes are general-knowledge completions the base
model answers confidently, recorded once per mind before the first sleep.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lifelong.learn.synthesis import salient_spans
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import closed_book
from lifelong.scoring import contains_answer, normalize_answer

RETENTION_CANDIDATES = (
    "The capital of France is", "The capital of Japan is", "The largest planet in the solar system is",
    "Water is made of hydrogen and", "The author of Hamlet is", "The currency of the United Kingdom is the",
    "The chemical symbol for gold is", "The first president of the United States was", "The Eiffel Tower is in",
    "The opposite of hot is", "The speed of light is about 300,000 kilometres per", "Monday, Tuesday,",
    "One, two, three,", "The Pacific is an", "Bees make", "The Great Wall is in", "A triangle has three",
    "The sun rises in the", "Penguins live mostly in", "The freezing point of water is 0 degrees",
    "The capital of Spain is", "The capital of Germany is", "The Statue of Liberty is in", "Cats and dogs are popular",
    "The color of grass is", "A year has twelve", "The Earth revolves around the", "Romeo and Juliet was written by William",
    "The tallest animal in the world is the",
    "Ice is frozen", "The primary language of Mexico is", "The Titanic sank in the Atlantic", "A dozen means",
    "The chemical symbol for water is", "January, February,", "The human body has two lungs and one",
    "Mars is often called the Red", "Shakespeare was born in Stratford-upon-",
)


@dataclass(frozen=True)
class Probe:
    prompt: str
    answer: str
    memory_id: int | None = None


def acquisition_probes(memories: Sequence[Memory], per_memory: int = 2) -> list[Probe]:
    probes = []
    for memory in memories:
        for span in salient_spans(memory.text)[:per_memory]:
            prefix = memory.text[: memory.text.find(span)].strip()
            if len(prefix.split()) >= 3:
                probes.append(Probe(f"Complete the sentence: {prefix}", span, memory.id))
    return probes


def accuracy(lm: LanguageModel, probes: Sequence[Probe], max_new_tokens: int = 48) -> float:
    if not probes:
        return 0.0
    answers = lm.generate_batch([closed_book(p.prompt) for p in probes], max_new_tokens=max_new_tokens)
    return sum(contains_answer(a, p.answer) for a, p in zip(answers, probes, strict=True)) / len(probes)


def record_retention_probes(lm: LanguageModel, path: Path, confidence: float = 0.3) -> list[Probe]:
    """Keep the completions whose first token the base model gives with probability >= confidence."""
    probes = lm.memo(("retention probes", confidence), lambda: _confident_completions(lm, confidence))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(json.dumps(asdict(p)) for p in probes) + "\n", encoding="utf-8")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)  # a kill mid-write never leaves a short file that would switch the gate off
    return probes


def _confident_completions(lm: LanguageModel, confidence: float) -> list[Probe]:
    probes = []
    for prompt in RETENTION_CANDIDATES:
        ids = lm.encode(prompt)
        with torch.inference_mode():
            probs = torch.softmax(lm.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        if float(probs.max()) >= confidence:
            answer = _greedy_continuation(lm, ids)
            if answer:
                probes.append(Probe(prompt, answer))
    return probes


def load_probes(path: Path) -> list[Probe]:
    return [Probe(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@torch.inference_mode()
def _greedy_continuation(lm: LanguageModel, ids: list[int], tokens: int = 3) -> str:
    out = lm.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                            max_new_tokens=tokens, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    return lm.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()


def _first_word(text: str) -> str:
    words = normalize_answer(text).split()
    return words[0] if words else ""


def retention_agreement(lm: LanguageModel, probes: Sequence[Probe]) -> float:
    """Share of recorded completions whose first word the model still gives ("Paris")."""
    if not probes:
        return 1.0
    completions = lm.complete_batch([p.prompt for p in probes], max_new_tokens=3)
    return sum(_first_word(c) == _first_word(p.answer) for c, p in zip(completions, probes, strict=True)) / len(probes)
