"""Requests that arrive together are generated together.

On a CPU a batch of 16 prompts costs little more than one (the weights are read once per
step for all of them), so the server does not answer requests one after another: a worker
thread takes the first waiting request, waits a few milliseconds for others, and generates
every request for the same model and settings in one `generate_batch`. All generation (and
streaming) holds one lock: a routed model switches adapters, which must not interleave.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from lifelong.model.language_model import LanguageModel

GENERATION_LOCK = threading.Lock()


@dataclass
class _Request:
    lm: LanguageModel
    messages: Sequence[dict[str, str]]
    max_new_tokens: int
    temperature: float
    seed: int
    future: Future = field(default_factory=Future)


class Batcher:
    def __init__(self, window_seconds: float = 0.01, max_batch: int = 16) -> None:
        self.window = window_seconds
        self.max_batch = max_batch
        self.batches: list[int] = []  # size of every batch generated, for the load benchmark
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="lifelong-batcher", daemon=True)
        self._worker.start()

    def submit(self, lm: LanguageModel, messages: Sequence[dict[str, str]], max_new_tokens: int, temperature: float,
               seed: int = 0) -> Future:
        request = _Request(lm, messages, max_new_tokens, temperature, seed)
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            waiting = [first]
            deadline = time.monotonic() + self.window
            while len(waiting) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                waiting.append(item)
            groups: dict[tuple[int, int, float, int], list[_Request]] = {}
            for request in waiting:
                groups.setdefault((id(request.lm), request.max_new_tokens, request.temperature, request.seed), []).append(request)
            for group in groups.values():
                self._generate(group)

    def _generate(self, group: list[_Request]) -> None:
        head = group[0]
        try:
            with GENERATION_LOCK:
                texts = head.lm.generate_batch([r.messages for r in group], max_new_tokens=head.max_new_tokens,
                                               temperature=head.temperature, seed=head.seed)
            self.batches.append(len(group))
        except BaseException as exc:  # noqa: BLE001 - every waiting request must hear about it
            for request in group:
                request.future.set_exception(exc)
            return
        for request, text in zip(group, texts, strict=True):
            request.future.set_result(text)


def usage(lm: LanguageModel, messages: Sequence[dict[str, str]], completion: str) -> dict[str, Any]:
    """OpenAI's usage block: tokens of the prompt as the model saw it, and of the answer."""
    prompt = len(lm.encode(lm.format_chat(messages)))
    completion_tokens = len(lm.tokenizer(completion, add_special_tokens=False)["input_ids"]) if completion else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}
