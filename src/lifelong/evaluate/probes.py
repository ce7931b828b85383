"""Held-out acquisition probes and retention probes.

Acquisition probes ask for a memory's salient span with a phrasing that synthesis never
uses ("Complete the sentence: ..."), so a module passes by knowing the fact, not by having
memorised the training prompt. Retention probes are general-knowledge completions the base
model answers confidently, recorded before a mind's first sleep (once per model on a machine:
the cache keeps them under the weights' fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lifelong.learn.synthesis import content_spans, fact_units, salient_spans
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel, left_padded
from lifelong.model.routed import RoutedLanguageModel, generate_together
from lifelong.paths import cache_dir
from lifelong.prompt import build_messages, closed_book
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
    """Sentence completions up to a salient span: `per_memory` per note, and as many per
    sentence of a document chunk (the units sleep learns, synthesis.fact_units).

    A chunk's sentence is asked about its names and numbers first, then its content phrases
    ("fermionic nature"): technical prose has few names, and with names alone a SQuAD passage
    got one probe or none (6 of 50 none, 5 one), so the gate's acquisition check on it was
    a coin flip or no check at all."""
    probes = []
    for memory in memories:
        units = fact_units(memory)
        for unit in units:
            spans = salient_spans(unit.text)
            if len(units) > 1:
                spans += content_spans(unit.text, exclude=spans)
            asked = [(unit.text[: unit.text.find(span)].strip(), span) for span in spans]
            if len(units) == 1:
                asked = asked[:per_memory]
            usable = [(prefix, span) for prefix, span in asked if len(prefix.split()) >= 3]
            for prefix, span in usable if len(units) == 1 else usable[:per_memory]:
                probes.append(Probe(f"Complete the sentence: {prefix}", span, memory.id))
    return probes


PROBE_ANSWER_TOKENS = 48  # answer length the gate's probes are asked with (a recorded answer counts only at it)


def accuracy(lm: LanguageModel, probes: Sequence[Probe], notes: Mapping[int, Memory] | None = None,
             max_new_tokens: int = PROBE_ANSWER_TOKENS) -> float:
    """Share of probes answered; with `notes`, each probe's memory is in its prompt, as `ask` puts it."""
    return share_answered(answered(lm, probes, notes, max_new_tokens))


def answered(lm: LanguageModel, probes: Sequence[Probe], notes: Mapping[int, Memory] | None = None,
             max_new_tokens: int = PROBE_ANSWER_TOKENS) -> list[bool | None]:
    """Whether each probe is answered; None where its prompt does not fit the context window
    with room for the answer (a note too long for the window is not asked)."""
    return answered_together([(lm, probes, notes)], max_new_tokens=max_new_tokens)[0]


ProbeRequest = tuple[LanguageModel, Sequence[Probe], Mapping[int, Memory] | None]


def answered_together(requests: Sequence[ProbeRequest], runner: RoutedLanguageModel | None = None,
                      max_new_tokens: int = PROBE_ANSWER_TOKENS) -> list[list[bool | None]]:
    """`answered` for several (model, probes, notes) requests. With a routed `runner` that can
    stand in for the models (model/routed.py: `generate_together`), every request's prompts
    are decoded in shared batches: a gate asking a candidate and its parent the same probes,
    closed-book and with their notes, decodes once instead of four times."""
    asked: list[tuple[LanguageModel, list[list[dict[str, str]]]]] = []
    fitting: list[list[bool]] = []
    for lm, probes, notes in requests:
        prompts = [probe_messages(p, notes) for p in probes]
        limit = lm.context_window - max_new_tokens
        fits = [len(lm.encode(lm.format_chat(m))) <= limit for m in prompts]
        fitting.append(fits)
        asked.append((lm, [m for m, ok in zip(prompts, fits, strict=True) if ok]))
    if runner is not None:
        replies = generate_together(runner, asked, max_new_tokens)
    else:
        replies = [lm.generate_batch(prompts, max_new_tokens=max_new_tokens) if prompts else [] for lm, prompts in asked]
    results = []
    for (_, probes, _), fits, answers in zip(requests, fitting, replies, strict=True):
        replies_left = iter(answers)
        results.append([contains_answer(next(replies_left), p.answer) if ok else None for p, ok in zip(probes, fits, strict=True)])
    return results


def probe_messages(probe: Probe, notes: Mapping[int, Memory] | None = None) -> list[dict[str, str]]:
    """The probe's prompt as `ask` puts it: with its memory as the note when `notes` has it,
    closed-book otherwise."""
    if notes is not None and probe.memory_id in notes:
        return build_messages(probe.prompt, [notes[probe.memory_id]])
    return closed_book(probe.prompt)


def answer_logprobs(lm: LanguageModel, probes: Sequence[Probe]) -> list[float | None]:
    """Mean log-probability per token of each probe's answer span as the reply to its
    closed-book prompt: how near the model is to giving it, where a greedy completion reads
    only hit or miss (teacher-forced, no generation; the probes in shared batches). None
    where the prompt and answer do not fit the window."""
    asked = [closed_book(p.prompt) for p in probes]
    fits = [len(lm.encode(lm.format_chat(m))) + len(lm.encode(p.answer)) <= lm.context_window
            for m, p in zip(asked, probes, strict=True)]
    scored = iter(lm.score_replies([m for m, ok in zip(asked, fits, strict=True) if ok],
                                   [p.answer for p, ok in zip(probes, fits, strict=True) if ok], normalize=True))
    return [next(scored) if ok else None for ok in fits]


def mean_gain(candidate: Sequence[float | None], parent: Sequence[float | None]) -> float | None:
    """Mean of candidate minus parent over the probes both scored (None if none)."""
    pairs = [(a, b) for a, b in zip(candidate, parent, strict=True) if a is not None and b is not None]
    return sum(a - b for a, b in pairs) / len(pairs) if pairs else None


def share_answered(results: Sequence[bool | None]) -> float:
    """Share answered among the probes asked (0.0 when none was)."""
    asked = [r for r in results if r is not None]
    return sum(asked) / len(asked) if asked else 0.0


GENERAL_TOPICS = 1000  # words drawn from the vocabulary; 131 of 438 prompts were confident on SmolLM2-135M
GENERAL_TEMPLATES = ("A {t} is", "The word {t} refers to", "People use {t} to", "The opposite of {t} is",
                     "In science, {t} is", "A common example of {t} is")


def vocabulary_topics(lm: LanguageModel, count: int = GENERAL_TOPICS, seed: int = 0) -> list[str]:
    """Common words from the model's own vocabulary (whole-word tokens of 6+ letters): a broad
    spread of subjects that no hand list chooses."""
    words = sorted({token[1:] for token in lm.tokenizer.get_vocab() if token[:1] in ("Ġ", "▁")
                    and token[1:].isascii() and token[1:].isalpha() and token[1:].islower() and len(token) >= 7})
    return random.Random(seed).sample(words, min(count, len(words)))


def general_prompts(lm: LanguageModel, count: int = GENERAL_TOPICS) -> list[str]:
    """Openings about vocabulary words, each in one of a few neutral frames: what the base says
    about everyday subjects. Completing them costs three tokens each, so hundreds are cheap."""
    return [GENERAL_TEMPLATES[i % len(GENERAL_TEMPLATES)].format(t=t) for i, t in enumerate(vocabulary_topics(lm, count))]


def record_retention_probes(lm: LanguageModel, path: Path, confidence: float = 0.3) -> list[Probe]:
    """Keep the completions whose first token the base model gives with probability >= confidence:
    a hand list of well-known facts plus hundreds of openings of the base's own sentences.

    Recording takes about a thousand forwards (12 s for SmolLM2-135M on 2 cores, a sixth of a
    3-fact sleep), and the probes depend only on the weights and this recipe, so they are kept
    in the machine's cache under the model's fingerprint: every later mind on the same model
    copies them instead of recording them again."""
    prompts = [*RETENTION_CANDIDATES, *general_prompts(lm)]
    recipe = hashlib.blake2b(json.dumps([prompts, confidence]).encode(), digest_size=8).hexdigest()
    cached = cache_dir() / "retention-probes" / f"{lm.fingerprint()}-{recipe}.jsonl"
    copy = _cached_probes(cached)
    probes = lm.memo(("retention probes", confidence, GENERAL_TOPICS), lambda: copy or _confident_completions(lm, prompts, confidence))
    if copy != probes:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_probes(probes, cached)
    write_probes(probes, path)
    return probes


def _cached_probes(path: Path) -> list[Probe]:
    """The probes cached at `path`, or none when there is no readable copy (recorded again)."""
    try:
        return load_probes(path)
    except (OSError, ValueError, TypeError):
        return []


def write_probes(probes: Sequence[Probe], path: Path) -> None:
    """One JSON line per probe, written whole or not at all: a kill mid-write never leaves a
    short file that would switch the gate off, nor a short cached copy."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(json.dumps(asdict(p)) for p in probes) + "\n", encoding="utf-8")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@torch.inference_mode()
def next_token_stats(lm: LanguageModel, prompts: Sequence[str], candidates: Sequence[int] | None = None,
                     batch_size: int = 16) -> list[tuple[int, float, float]]:
    """Per raw prompt: the most likely next token, its probability, and the probability of
    `candidates[i]` (0.0 without candidates), from one left-padded forward per batch."""
    stats: list[tuple[int, float, float]] = []
    pad = lm.tokenizer.pad_token_id
    for start in range(0, len(prompts), batch_size):
        rows = [lm.encode(p) for p in prompts[start : start + batch_size]]
        input_ids, attention = left_padded(rows, pad)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: only the last position goes through the vocabulary projection (the
        # same values, bit for bit; a 16-prompt batch's logits were 165 MB of a screen's memory)
        logits = lm.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                          logits_to_keep=1).logits[:, -1].float()
        probs = torch.softmax(logits, -1)
        top = probs.max(-1)
        chosen = (probs.gather(1, torch.tensor(list(candidates[start : start + batch_size]))[:, None])[:, 0].tolist()
                  if candidates is not None else [0.0] * len(rows))
        stats += list(zip(top.indices.tolist(), top.values.tolist(), chosen, strict=True))
    return stats


def next_token_confidence(lm: LanguageModel, prompts: Sequence[str], batch_size: int = 32) -> list[float]:
    """How sure the model is of each raw prompt's next token (its top probability)."""
    return [p for _, p, _ in next_token_stats(lm, prompts, None, batch_size)]


def _confident_completions(lm: LanguageModel, prompts: Sequence[str], confidence: float, batch_size: int = 32) -> list[Probe]:
    """The greedy three-token completion of each prompt whose next token the model is sure of."""
    sure = [p for p, value in zip(prompts, next_token_confidence(lm, prompts, batch_size), strict=True) if value >= confidence]
    answers = lm.complete_batch(sure, max_new_tokens=3, batch_size=batch_size) if sure else []
    return [Probe(p, a) for p, a in zip(sure, answers, strict=True) if a]


def load_probes(path: Path) -> list[Probe]:
    return [Probe(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _first_word(text: str) -> str:
    words = normalize_answer(text).split()
    return words[0] if words else ""


def retention_agreement(lm: LanguageModel, probes: Sequence[Probe]) -> float:
    """Share of recorded completions whose first word the model still gives ("Paris")."""
    if not probes:
        return 1.0
    completions = lm.complete_batch([p.prompt for p in probes], max_new_tokens=3)
    return sum(_first_word(c) == _first_word(p.answer) for c, p in zip(completions, probes, strict=True)) / len(probes)
