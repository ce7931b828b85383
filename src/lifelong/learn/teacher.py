"""An optional teacher: any OpenAI-compatible chat endpoint that writes training data.

A 135M model writes poor questions and paraphrases; a larger model behind an endpoint the
user runs (vLLM, llama.cpp server, Ollama, a hosted API) writes better ones. The teacher
only *writes data*: what it returns goes through the same training and the same gate, and
each example keeps the id of the memory it was written from. Off unless a URL is configured.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from lifelong.errors import InputError
from lifelong.learn.synthesis import TrainingExample, topic_of
from lifelong.memory.records import Memory
from lifelong.prompt import closed_book

API_KEY_ENV = "LIFELONG_TEACHER_API_KEY"
INSTRUCTION = (
    "You write training data for a small language model that must learn the fact below.\n"
    "Fact: {fact}\n\n"
    "Reply with JSON only, in this shape:\n"
    '{{"qa": [{{"question": "...", "answer": "..."}}], "paraphrases": ["..."], "implications": ["..."]}}\n'
    "Give {n} question-answer pairs that the fact answers, {n} paraphrases of the fact, and up to "
    "{n} statements that follow from it. Use only what the fact says."
)


@dataclass(frozen=True)
class TeacherConfig:
    url: str  # base URL of the API, e.g. http://localhost:8000/v1
    model: str
    per_memory: int = 3
    timeout: float = 60.0


class Teacher:
    def __init__(self, config: TeacherConfig) -> None:
        if not config.url.startswith(("http://", "https://")):
            raise InputError(f"teacher url '{config.url}' is not an http(s) URL; pass e.g. http://localhost:8000/v1")
        if not config.model:
            raise InputError("teacher model is empty; pass the model name the endpoint serves")
        self.config = config

    def _chat(self, content: str) -> str:
        body = json.dumps({
            "model": self.config.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0.0,
        }).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get(API_KEY_ENV):
            headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
        request = urllib.request.Request(self.config.url.rstrip("/") + "/chat/completions", body, headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad JSON/UTF-8
            raise InputError(
                f"the teacher at {self.config.url} did not answer ({exc}); start it, fix --teacher-url, or sleep without a teacher"
            ) from exc
        try:
            return str(payload["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            raise InputError(f"the teacher at {self.config.url} did not reply in the OpenAI chat format: {str(payload)[:200]}") from exc

    def examples(self, memories: Sequence[Memory]) -> list[TrainingExample]:
        examples: list[TrainingExample] = []
        for memory in memories:
            reply = self._chat(INSTRUCTION.format(fact=memory.text, n=self.config.per_memory))
            examples += parse_reply(reply, memory, self.config.per_memory)
        return examples


def parse_reply(reply: str, memory: Memory, limit: int) -> list[TrainingExample]:
    """Examples from the teacher's JSON; a reply that is not the asked shape yields none
    (a teacher's bad day must not become training data)."""
    match = re.search(r"\{.*\}", reply, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else {}
    except json.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        return []
    ids, topic = (memory.id,), topic_of(memory)

    examples = []
    for pair in _items(data.get("qa"), limit):
        if isinstance(pair, dict) and _text(pair.get("question")) and _text(pair.get("answer")):
            examples.append(TrainingExample(closed_book(pair["question"].strip()), pair["answer"].strip(), ids, "teacher-qa"))
    for text in _items(data.get("paraphrases"), limit):
        if _text(text):
            examples.append(TrainingExample(closed_book(f"Say what you know about {topic} in other words."), text.strip(), ids, "teacher-paraphrase"))
    for text in _items(data.get("implications"), limit):
        if _text(text):
            examples.append(TrainingExample(closed_book(f"What follows from what you know about {topic}?"), text.strip(), ids, "teacher-implication"))
    return examples


def _items(value: object, limit: int) -> list:
    return list(value)[:limit] if isinstance(value, list) else []


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
