"""Write-time checks against poisoning: a memory that contradicts what the model or the current
memories confidently say, or that tries to instruct the model, is held back.

Why at write time: a poisoned note is dangerous twice, once when retrieval pastes it into a
prompt and again when a sleep trains it into the weights. Both read only memories that passed
these checks (or that a person approved with `lifelong quarantine approve`).

Contradiction is measured, not keyword-matched. For each name the memory states (numbers only
against neighbours: the model's first digit is a format guess), the text before it is given to the base model as a plain completion: if the model is
confident (first-token probability >= `confidence`) of a different word, the memory contradicts
what the model knows ("Vinson Massif is located in the continent of" -> Antarctica, where the
memory says Europe). The same prefix is then given after each of the nearest current memories:
a confident different word copied from that note means the two memories disagree. The model
copies from a note far more reliably than a 135M model knows facts, which is what makes the
second check a correction detector ("The office is in" after "The office is in Lisbon." ->
Lisbon, where the new memory says Porto).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lifelong.learn.synthesis import salient_spans
from lifelong.memory.records import PENDING, TRUST_LEVELS, Memory
from lifelong.memory.retrieval import STOPWORDS

if TYPE_CHECKING:  # the model stack loads only when a check runs: `recall` and `learn` start fast
    from lifelong.model.language_model import LanguageModel

MIN_PREFIX_WORDS = 3  # a shorter prefix ("The", "In 1964") leaves the model nothing to be sure of
NEIGHBOURS = 3  # nearest current memories a new one is checked against
CONFIDENCE = 0.2  # the model's next-token probability that counts as sure (calibrated: README, Poisoning)
# How sure the model alone must be to hold a `user` memory back: the lowest threshold of the
# calibration at which none of 50 true statements and none of 300 fictitious TOFU facts is held
# (README, Poisoning); an `untrusted` one needs only CONFIDENCE.
USER_CONFIDENCE = 0.4
RATIO = 10.0  # ... and how many times likelier than the memory's own word it must find its own
ARTICLES = ("the", "a", "an")


def initial_quarantine(instruction: str | None, trust: str) -> str | None:
    """A memory's state as it is stored: text from below `trusted` that the instruction screen
    flagged (`instruction`: its reason, memory/injection.py) is quarantined at once; everything
    else waits for the contradiction check (PENDING), which needs the model and so runs before
    the next answer or sleep (a `trusted` memory is checked too, to find what it corrects, but
    never quarantined)."""
    return instruction if instruction and trust != "trusted" else PENDING


@dataclass(frozen=True)
class Contradiction:
    """Where a memory disagrees: the span it states, what was confidently expected instead,
    and whose expectation it was (the model's, or memory `memory_id`'s)."""

    span: str
    expected: str
    confidence: float
    memory_id: int | None = None

    def describe(self) -> str:
        who = f"memory #{self.memory_id}" if self.memory_id is not None else "the model"
        return f"says {self.span!r} where {who} says {self.expected!r} (p={self.confidence:.2f})"


@dataclass(frozen=True)
class SpanProbe:
    """The model's next token after the text before a span: what it expects, how sure it is,
    and how likely it finds the span's own first token there."""

    prompt: str
    span: str
    memory_id: int | None  # the neighbour in the prompt, None for the model alone
    expected: str
    confidence: float
    span_probability: float


def span_probes(lm: LanguageModel, text: str, neighbours: Sequence[Memory], max_spans: int = 3) -> list[SpanProbe]:
    """One probe per salient span of `text` (names, numbers, years) with at least
    MIN_PREFIX_WORDS before it, alone and after each neighbour that states the same frame
    ("... is in X") with something other than the span."""
    cases: list[tuple[str, str, int | None]] = []
    for span in salient_spans(text)[:max_spans]:
        prefix = text[: text.find(span)].rstrip()
        if len(prefix.split()) < MIN_PREFIX_WORDS:
            continue
        cases.append((prefix, span, None))
        cases += [(f"{n.text.strip()}\n{prefix}", span, n.id) for n in neighbours  # only notes in the same frame
                  if span not in n.text and same_frame_word(n.text, prefix) and same_subject(n.text, prefix)]
    if not cases:
        return []
    from lifelong.evaluate.probes import next_token_stats

    first_tokens = [lm.tokenizer(" " + span, add_special_tokens=False)["input_ids"][0] for _, span, _ in cases]
    stats = next_token_stats(lm, [prompt for prompt, _, _ in cases], first_tokens)
    probes = [SpanProbe(prompt, span, memory_id, lm.tokenizer.decode([top]).strip(), p_top, p_span)
              for (prompt, span, memory_id), (top, p_top, p_span) in zip(cases, stats, strict=True)]
    # "is owned by" -> " the" -> " Walt": where the model is sure of an article, look one token on
    articled = [i for i, p in enumerate(probes) if p.expected.lower() in ARTICLES and not probes[i].span.lower().startswith(p.expected.lower())]
    if articled:
        later = next_token_stats(lm, [probes[i].prompt + " " + probes[i].expected for i in articled],
                                 [first_tokens[i] for i in articled])
        for i, (top, p_top, _) in zip(articled, later, strict=True):
            p = probes[i]
            probes[i] = SpanProbe(p.prompt, p.span, p.memory_id, lm.tokenizer.decode([top]).strip(), p.confidence * p_top,
                                  p.span_probability)
    return probes


def contradictions(lm: LanguageModel, text: str, neighbours: Sequence[Memory], confidence: float = CONFIDENCE,
                   ratio: float = RATIO) -> list[Contradiction]:
    """Every confident disagreement between `text` and the model or the `neighbours`, from one
    batched forward pass: the model expects a different word of the same kind (a name where
    the memory has a name, a number where it has a number) with probability >= `confidence`,
    at least `ratio` times the probability it gives the memory's own word."""
    found = []
    neighbour_text = {n.id: n.text for n in neighbours}
    for probe in span_probes(lm, text, neighbours):
        if not disagrees(probe, confidence, ratio):
            continue
        expected = probe.expected
        if probe.memory_id is not None:
            stated = same_frame_word(neighbour_text[probe.memory_id], text[: text.find(probe.span)])
            if not stated or not stated.lower().startswith(expected.lower()) or stated.lower() == probe.span.split()[0].lower():
                continue  # the note must say the same thing with another value, and the model must be copying it
            expected = stated
        found.append(Contradiction(probe.span, expected, probe.confidence, probe.memory_id))
    return found


def same_subject(note: str, prefix: str) -> bool:
    """Whether the note names what the prefix is about (a name in the prefix that the note
    states too): "The full name of the author is ..." names no one, so two such notes about
    two authors never correct each other."""
    return any(name in note for name in salient_spans(prefix) if not name[0].isdigit())


def same_frame_word(note: str, prefix: str) -> str | None:
    """The word `note` puts right after the last MIN_PREFIX_WORDS words of `prefix` ("is in
    Lisbon" for "The office ... is in"): a note in the same frame with another value is what a
    correction replaces. Without that frame, a neighbour about something else is not contradicted."""
    frame = prefix.split()[-MIN_PREFIX_WORDS:]
    match = re.search(r"\s+".join(re.escape(w) for w in frame) + r"\s+([\w'’-]+)", note, re.IGNORECASE)
    return match.group(1) if match else None


def disagrees(probe: SpanProbe, confidence: float = CONFIDENCE, ratio: float = RATIO) -> bool:
    expected = probe.expected
    if probe.confidence < confidence or probe.confidence < ratio * probe.span_probability or not expected:
        return False
    if expected.lower() in STOPWORDS or not (expected[0].isdigit() if probe.span[0].isdigit() else expected[0].isupper()):
        return False  # "the", or a word of another kind than the span: a way of phrasing, not a claim
    if probe.memory_id is None and probe.span[0].isdigit():
        return False  # numbers are split into digits: the model's first digit is a guess at a format, not knowledge
    return not probe.span.lower().startswith(expected.lower())  # "19" before "1965" agrees


@dataclass(frozen=True)
class Screening:
    """The check's verdict on one memory: quarantine reason (None: clean) and the memories it
    corrects (to supersede)."""

    memory_id: int
    quarantine: str | None
    supersedes: tuple[int, ...] = ()
    found: tuple[Contradiction, ...] = ()


def judge_contradictions(memory: Memory, neighbours: Sequence[Memory], found: Sequence[Contradiction]) -> Screening:
    """Contradicting the model (from an `untrusted` source; from a `user` one, when the model is
    very sure), or a memory of higher trust, quarantines; contradicting a memory of equal or
    lower trust is a correction.

    A `user` memory is held for contradicting the model alone only when the model is much
    surer (USER_CONFIDENCE): its expectation is sometimes a prior, not knowledge ("Captain Oru
    Tadeski sailed solo across the" -> Pacific, p=0.34), and holding a user's own fact about
    something the model never saw back would cost them what they came to teach. A `trusted`
    memory is never held: it may correct the model."""
    rank = TRUST_LEVELS.index(memory.trust)
    trust_of = {n.id: TRUST_LEVELS.index(n.trust) for n in neighbours}
    model_bar = {"untrusted": 0.0, "user": USER_CONFIDENCE}.get(memory.trust)  # None: trusted, never held by the model
    against = [c for c in found if (c.memory_id is None and model_bar is not None and c.confidence >= model_bar)
               or (c.memory_id is not None and trust_of[c.memory_id] > rank)]
    if against:
        return Screening(memory.id, "contradicts " + "; ".join(c.describe() for c in against[:2]), (), tuple(found))
    corrected = tuple(dict.fromkeys(c.memory_id for c in found if c.memory_id is not None))
    return Screening(memory.id, None, corrected, tuple(found))
