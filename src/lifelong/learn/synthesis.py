"""Training data synthesised from memories, each example tagged with the memories it came from.

A 135M model writes poor free text, so most examples are deterministic: the statement itself,
cloze over salient spans (names, dates, numbers), and question/answer forms. Context
distillation adds the model's own answers *with the memory in its prompt* as targets for the
model *without* it: the weights learn to say what the context made the model say.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import random

from lifelong.memory.records import Memory
from lifelong.memory.retrieval import STOPWORDS
from lifelong.prompt import build_messages, closed_book

Message = dict[str, str]

_YEAR = r"\b(?:1[5-9]\d\d|20\d\d)\b"
_NUMBER = r"\b\d+(?:[.,]\d+)*(?:st|nd|rd|th)?(?:\s?(?:%|percent|gigahertz|GHz|km|kilometres|metres|meters|years|million|billion))?"
_NAME = r"\b[A-Z][\w'’-]+(?:\s+(?:of|the|de|van|von|da|del)?\s*[A-Z][\w'’-]+)*"
_SPAN = re.compile(f"{_YEAR}|{_NUMBER}|{_NAME}")
_LEADING_WORDS = frozenset("The A An In On At It He She They His Her Its Their This That Since Yes No".split())

# Phrasings used for training. Evaluation phrasings live elsewhere and never appear here.
STATEMENT_PROMPTS = ("What do you know about {topic}?", "Tell me a fact about {topic}.")
RETEMPLATED_PROMPTS = ("Recall what you learned about {topic}.",)
TOPIC_PROMPTS = STATEMENT_PROMPTS + RETEMPLATED_PROMPTS  # a fact's statement is trained under the first N of these
CLOZE_PROMPT = "Fill in the blank: {masked}"
QUESTION_WORDS = {"year": "when", "number": "how many", "name": "who or what", "phrase": "what"}
MODEL_QUESTION_REQUEST = "Write one short question that the note above answers. Reply with the question only."
DISTILL_TOPIC_QUESTIONS = ("What do you know about {topic}?", "Who or what is {topic}?")

@dataclass(frozen=True)
class TrainingExample:
    prompt: list[Message]
    answer: str
    memory_ids: tuple[int, ...]
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


def salient_spans(text: str) -> list[str]:
    """Names, years and numbers, longest first. Sentence-initial function words are dropped, as
    is a lone capitalised word opening a sentence ("Presently"): capitals there mark no name."""
    spans = []
    for match in _SPAN.finditer(text):
        span = match.group(0).strip()
        words = span.split()
        while words and words[0] in _LEADING_WORDS:
            words = words[1:]
        span = re.sub(r"(?:'s|’s)$", "", " ".join(words))
        opens_sentence = not text[: match.start()].strip() or text[: match.start()].rstrip()[-1] in ".!?:\""
        if opens_sentence and len(words) == 1 and not span[0].isdigit() and span == match.group(0).strip():
            continue
        if len(span) > 1 and span not in spans:
            spans.append(span)
    return sorted(spans, key=len, reverse=True)


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
# A memory longer than this (a document chunk) is learned sentence by sentence. Every TOFU fact
# (one to three sentences, at most 44 words) stays whole, as all TOFU measurements were made;
# SQuAD chunks run 29-77 words (10th-90th percentile), two to five sentences.
SPLIT_ABOVE_WORDS = 45


def sentences(text: str, min_words: int = 4) -> list[str]:
    """The text's sentences of at least `min_words` words ("Dr." or "No." do not end one here)."""
    return [part.strip() for part in SENTENCE_END.split(text) if len(part.split()) >= min_words]


def fact_units(memory: Memory) -> list[Memory]:
    """The pieces training data and probes are made from, each carrying the memory's id.

    A short note is one fact and stays whole. A document chunk holds a fact or more per
    sentence, but whole-chunk examples covered only its four longest spans and asked questions
    as long as the chunk (SQuAD single passages were answered closed-book at 0.35 of
    retrieval's rate on the first nine): each of its sentences is a unit."""
    parts = sentences(memory.text)
    if len(memory.text.split()) <= SPLIT_ABOVE_WORDS or len(parts) < 2:
        return [memory]
    return [replace(memory, text=part) for part in parts]


def topic_of(memory: Memory) -> str:
    """What a memory is about: the first name in it (sentences usually open with their subject)."""
    names = [s for s in salient_spans(memory.text) if s[0].isupper()]
    return min(names, key=memory.text.find) if names else " ".join(memory.text.split()[:3])


def span_kind(span: str) -> str:
    if re.fullmatch(_YEAR, span):
        return "year"
    if span[0].isdigit():
        return "number"
    return "phrase" if span[0].islower() else "name"


def span_question(statement: str, span: str) -> str:
    """An in-situ question whose answer is the span: "X was founded in when?"."""
    return statement.replace(span, QUESTION_WORDS[span_kind(span)], 1).rstrip(".!") + "?"


_PHRASE_BREAKS = STOPWORDS | frozenset(
    "between through during after before under over against among within without other most more many some only very not "
    "all both well just often example".split())


def content_spans(text: str, exclude: Sequence[str] = (), limit: int = 3) -> list[str]:
    """Lower-case content phrases ("normal force", "fermionic nature"), longest first: runs of
    one to three words that are neither stopwords nor part of a name or number in `exclude`.
    The answers to questions about technical text are mostly such phrases, and salient_spans
    sees none of them."""
    taken = " ".join(exclude).lower()
    phrases: list[str] = []
    for run in re.split(r"[^\w\s'’-]+", text):
        words: list[str] = []
        for word in [*run.split(), ""]:
            if word and word.islower() and word.isalpha() and word not in _PHRASE_BREAKS and len(word) > 2:
                words.append(word)
                continue
            while words:
                phrase = " ".join(words[:3])
                if phrase not in taken and phrase not in phrases:
                    phrases.append(phrase)
                words = words[3:]
    return sorted(phrases, key=len, reverse=True)[:limit]


def deterministic_examples(memory: Memory, content_cloze: bool = False, recite: bool = False,
                           statement_prompts: int = len(TOPIC_PROMPTS)) -> list[TrainingExample]:
    """The statement under topic prompts (the first `statement_prompts` of three), cloze over its
    spans, and in-situ span questions.

    With `recite`, the span questions (over names and numbers, and over content phrases) are
    answered with the whole statement instead of the span: a question about a passage has to
    find its sentence among the passage's others, and a recited sentence contains the answer."""
    ids = (memory.id,)
    statement = memory.text.strip()
    examples: list[TrainingExample] = []
    if memory.kind == "qa" and "?" in statement:
        question, answer = statement.split("?", 1)
        examples.append(TrainingExample(closed_book(question.strip() + "?"), answer.strip(), ids, "qa"))
    topic = topic_of(memory)
    for template in TOPIC_PROMPTS[:statement_prompts]:
        examples.append(TrainingExample(closed_book(template.format(topic=topic)), statement, ids, "statement"))
    names = salient_spans(statement)[:4]
    phrases = content_spans(statement, exclude=names) if content_cloze else []
    for span in names + phrases:
        masked = statement.replace(span, "____", 1)
        examples.append(TrainingExample(closed_book(CLOZE_PROMPT.format(masked=masked)), span, ids, "cloze"))
    asked = names[:3] + ((phrases or content_spans(statement, exclude=names)) if recite else phrases)
    for span in asked:
        answer, kind = (statement, "recite") if recite else (span, "span-question")
        examples.append(TrainingExample(closed_book(span_question(statement, span)), answer, ids, kind))
    return examples


class Distiller(Protocol):
    """The model with memories in its context: writes questions and answers them."""

    def write_questions(self, memories: Sequence[Memory]) -> list[list[str]]:
        """The questions it writes about each memory (one list per memory, maybe empty)."""
        ...

    def answer(self, pairs: Sequence[tuple[str, Memory]]) -> list[str]: ...


def distillation_examples(memories: Sequence[Memory], distiller: Distiller) -> list[TrainingExample]:
    """Questions about each memory (templates over its topic, plus those the model writes
    itself), answered by the model with the memory in its prompt; the module learns to give
    that answer without it."""
    written = distiller.write_questions(memories)
    pairs: list[tuple[str, Memory]] = []
    for memory, own_questions in zip(memories, written, strict=True):
        topic = topic_of(memory)
        pairs += [(template.format(topic=topic), memory) for template in DISTILL_TOPIC_QUESTIONS]
        usable = dict.fromkeys(q.strip() for q in own_questions if _usable_question(q))  # in order, no repeats
        pairs += [(question, memory) for question in usable]
    answers = distiller.answer(pairs)
    return [
        TrainingExample(closed_book(question), answer.strip(), (memory.id,), "distilled")
        for (question, memory), answer in zip(pairs, answers, strict=True)
        if answer.strip()
    ]


class SharedDistiller:
    """A distiller that writes the distillation of a sleep's next topics together, in batches
    as large as a generation batch, and answers each topic from what it wrote.

    Why: a sleep by topic synthesises each topic's data in turn, and each topic's questions and
    answers were a generation of a few rows (a SQuAD passage's sentences, one author's facts).
    On a CPU a batch of dozens of short prompts costs little more than one (64 rows: 0.265 s
    an answer against 0.519 at 16, the same answers at every batch size;
    model/language_model.py). When a topic's notes are not written yet, the notes of the
    topics after it are written with them, up to `rows` notes: no more, since a larger batch
    gains nothing and an interrupted sleep would lose what it wrote for topics it never
    trained. Notes are matched by memory id and text (a document's sentence units share their
    memory's id); a note no topic named is written when asked. With `rows` 0 each topic's
    notes are written alone, as without it (what sampled questions need: a seeded sample
    depends on the rows drawn beside it)."""

    def __init__(self, inner: Distiller, topics: Sequence[Sequence[Memory]], rows: int = 64) -> None:
        self.inner, self.rows = inner, rows
        self.ahead = [unit for topic in topics for memory in topic for unit in fact_units(memory)]  # in the order topics run
        self.questions: dict[tuple[int, str], list[str]] = {}
        self.answers: dict[tuple[str, int, str], str] = {}

    def write_questions(self, memories: Sequence[Memory]) -> list[list[str]]:
        self._write_ahead(memories)
        missing = list({_unit_key(m): m for m in memories if _unit_key(m) not in self.questions}.values())
        if missing:
            self.questions.update(zip(map(_unit_key, missing), self.inner.write_questions(missing), strict=True))
        return [self.questions[_unit_key(m)] for m in memories]

    def answer(self, pairs: Sequence[tuple[str, Memory]]) -> list[str]:
        self._write_ahead([m for _, m in pairs])
        missing = list({(q, *_unit_key(m)): (q, m) for q, m in pairs if (q, *_unit_key(m)) not in self.answers}.items())
        if missing:
            self.answers.update(zip((key for key, _ in missing), self.inner.answer([pair for _, pair in missing]), strict=True))
        return [self.answers[(q, *_unit_key(m))] for q, m in pairs]

    def _write_ahead(self, asked: Sequence[Memory]) -> None:
        """Take notes off the front of the queue until every asked note still queued is taken
        and at least `rows` are, then write them all: questions in one pass, answers in one."""
        waiting = {_unit_key(m) for m in asked} & {_unit_key(u) for u in self.ahead}
        if not waiting:
            return
        taken: list[Memory] = []
        while self.ahead and (waiting or len(taken) < self.rows):
            unit = self.ahead.pop(0)
            waiting.discard(_unit_key(unit))
            taken.append(unit)
        distillation_examples(taken, self)


def _unit_key(memory: Memory) -> tuple[int, str]:
    return memory.id, memory.text


def whole_sentences(text: str) -> str:
    """The text up to its last sentence end; "" if that leaves under four words ("Dr.")."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    kept = text[: ends[-1]].strip() if ends else ""
    return kept if len(kept.split()) >= 4 else ""


def _usable_question(text: str) -> bool:
    text = text.strip()
    return text.endswith("?") and 4 <= len(text.split()) <= 30 and "\n" not in text


def synthesise(
    memories: Sequence[Memory],
    distiller: Distiller | None = None,
    extra: Sequence[TrainingExample] = (),
    content_cloze: bool = False,
    recite: bool = False,
    statement_prompts: int = len(TOPIC_PROMPTS),
) -> list[TrainingExample]:
    """All training examples for these memories, per fact unit (a sentence of a document
    chunk, else the whole note): deterministic forms, context distillation when a distiller is
    given, and `extra` (e.g. a teacher's questions).

    `recite` applies to documents (every chunk, split into sentences or short enough to stay
    whole) and to the sentences of any split note: a question about a passage must find its
    sentence among the passage's others. A short note of kind "fact" (what `learn` makes of
    a line, every TOFU fact) is one fact whose span questions keep their short answers, so
    every TOFU measurement stands as it was. (Reciting split chunks only left 42 of the 107
    chunks of 50 SQuAD passages, the short ones, without it: closed-book 0.273 against 0.324
    with every chunk recited.)"""
    units: list[Memory] = []
    examples: list[TrainingExample] = []
    for memory in memories:
        pieces = fact_units(memory)
        units += pieces
        recited = recite and (len(pieces) > 1 or memory.kind == "document")
        for unit in pieces:
            examples += deterministic_examples(unit, content_cloze, recited, statement_prompts)
    if distiller is not None and units:
        examples += distillation_examples(units, distiller)
    return examples + list(extra)


QUESTION_KINDS = ("distilled", "qa")  # span questions are statement rewrites: context rows of them add cost, not reading


def context_examples(examples: Sequence[TrainingExample], memories: Sequence[Memory], distractors: int = 2,
                     distractor_only_share: float = 0.25, seed: int = 0, note_rows: bool = True) -> list[TrainingExample]:
    """RAFT-style rows: each question example (and each memory's first cloze) again with its
    memory among 1-`distractors` other notes in the prompt (shuffled), and a share of the
    question examples with the other notes only. The first teaches the module to read a
    retrieved note; the second to answer from its weights when retrieval brought the wrong ones.
    The share is small because rows without the note teach the module to look past notes: with
    one such row per question (30 TOFU facts, commit 4606189) the module answered 0.68 of its
    probes with the note in the prompt, against the base's 0.82. Prompts are built exactly as
    `ask` builds them, so the module learns the format it is served in. `note_rows=False` keeps
    only the rows without the memory (the same rows, drawn the same way): a routed module steps
    aside when its memory is quoted, and the note rows are half of a sleep's trained tokens."""
    rng = random.Random(seed)
    by_id = {m.id: m for m in memories}
    rows: list[TrainingExample] = []
    clozed: set[int] = set()
    for example in examples:
        if len(example.memory_ids) != 1 or example.memory_ids[0] not in by_id:
            continue
        first_cloze = example.kind == "cloze" and example.memory_ids[0] not in clozed
        if example.kind not in QUESTION_KINDS and not first_cloze:
            continue
        if first_cloze:
            clozed.add(example.memory_ids[0])
        memory = by_id[example.memory_ids[0]]
        others = [m for m in memories if m.id != memory.id]
        chosen = rng.sample(others, min(len(others), rng.randint(1, distractors))) if others else []
        question = example.prompt[-1]["content"]
        with_memory = [memory, *chosen]
        rng.shuffle(with_memory)
        if note_rows:
            rows.append(TrainingExample(build_messages(question, with_memory), example.answer, example.memory_ids, "context"))
        if chosen and example.kind in QUESTION_KINDS and rng.random() < distractor_only_share:
            rows.append(TrainingExample(build_messages(question, chosen), example.answer, example.memory_ids, "distractors"))
    return rows


def data_hash(examples: Sequence[TrainingExample]) -> str:
    payload = json.dumps([e.to_dict() for e in examples], sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()
