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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from lifelong.memory.records import Memory

Message = dict[str, str]

_YEAR = r"\b(?:1[5-9]\d\d|20\d\d)\b"
_NUMBER = r"\b\d+(?:[.,]\d+)*(?:\s?(?:%|percent|gigahertz|GHz|km|kilometres|metres|meters|years|million|billion))?"
_NAME = r"\b[A-Z][\w'’-]+(?:\s+(?:of|the|de|van|von|da|del)?\s*[A-Z][\w'’-]+)*"
_SPAN = re.compile(f"{_YEAR}|{_NUMBER}|{_NAME}")
_LEADING_WORDS = frozenset("The A An In On At It He She They His Her Its Their This That Since Yes No".split())

# Phrasings used for training. Evaluation phrasings live elsewhere and never appear here.
STATEMENT_PROMPTS = ("What do you know about {topic}?", "Tell me a fact about {topic}.")
CLOZE_PROMPT = "Fill in the blank: {masked}"


@dataclass(frozen=True)
class TrainingExample:
    prompt: list[Message]
    answer: str
    memory_ids: tuple[int, ...]
    kind: str

    def to_dict(self) -> dict:
        return asdict(self)


def salient_spans(text: str) -> list[str]:
    """Names, years and numbers, longest first; sentence-initial function words are dropped."""
    spans = []
    for match in _SPAN.finditer(text):
        span = match.group(0).strip()
        words = span.split()
        while words and words[0] in _LEADING_WORDS:
            words = words[1:]
        span = " ".join(words)
        if len(span) > 1 and span not in spans:
            spans.append(span)
    return sorted(spans, key=len, reverse=True)


def topic_of(memory: Memory) -> str:
    """What a memory is about: the first name in it (sentences usually open with their subject)."""
    names = [s for s in salient_spans(memory.text) if s[0].isupper()]
    return min(names, key=memory.text.find) if names else " ".join(memory.text.split()[:3])


def _user(text: str) -> list[Message]:
    return [{"role": "user", "content": text}]


def deterministic_examples(memory: Memory) -> list[TrainingExample]:
    ids = (memory.id,)
    statement = memory.text.strip()
    examples: list[TrainingExample] = []
    if memory.kind == "qa" and "?" in statement:
        question, answer = statement.split("?", 1)
        examples.append(TrainingExample(_user(question.strip() + "?"), answer.strip(), ids, "qa"))
    topic = topic_of(memory)
    for template in STATEMENT_PROMPTS:
        examples.append(TrainingExample(_user(template.format(topic=topic)), statement, ids, "statement"))
    for span in salient_spans(statement)[:4]:
        masked = statement.replace(span, "____", 1)
        examples.append(TrainingExample(_user(CLOZE_PROMPT.format(masked=masked)), span, ids, "cloze"))
    return examples


def distillation_examples(
    memory: Memory,
    answer_with_context: Callable[[str, Memory], str],
    questions: Sequence[str] | None = None,
) -> list[TrainingExample]:
    """Questions about the memory answered by the model with the memory in its prompt; the
    module is trained to give that answer without it."""
    topic = topic_of(memory)
    asked = list(questions or (f"What do you know about {topic}?", f"Who or what is {topic}?"))
    examples = []
    for question in asked:
        answer = answer_with_context(question, memory).strip()
        if answer:
            examples.append(TrainingExample(_user(question), answer, (memory.id,), "distilled"))
    return examples


def synthesise(
    memories: Sequence[Memory],
    answer_with_context: Callable[[str, Memory], str] | None = None,
) -> list[TrainingExample]:
    examples: list[TrainingExample] = []
    for memory in memories:
        examples += deterministic_examples(memory)
        if answer_with_context is not None:
            examples += distillation_examples(memory, answer_with_context)
    return examples


def data_hash(examples: Sequence[TrainingExample]) -> str:
    payload = json.dumps([e.to_dict() for e in examples], sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()
