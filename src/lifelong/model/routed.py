"""A base model with a library of knowledge modules, each input served by the module its
router picks or by the exact base weights.

The modules are PEFT LoRA adapters loaded side by side into one PeftModel (one copy of the
base weights, a few MB per module). Inputs are grouped by route and each group runs with its
adapter set, or with every adapter disabled: PEFT then calls the untouched base layers, so an
input no module claims gets the base model's answer exactly.

A claimed question that arrives with retrieved notes is answered by two experts at once (see
model/fused.py): the base weights reading the notes, and the module answering the bare
question closed-book, as it learned to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lifelong.learn.router import Router, routing_text
from lifelong.model.fused import product_of_experts
from lifelong.model.language_model import LanguageModel, Message
from lifelong.prompt import closed_book

T = TypeVar("T")


def conversation_route_text(messages: Sequence[Message]) -> str:
    """The last user turn, quoted notes included (the router reads the question out of it)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


def quotes_notes(messages: Sequence[Message]) -> bool:
    """Whether the last user turn carries retrieved memories (as prompt.build_messages writes them)."""
    return "</memory>" in conversation_route_text(messages)


class _Weights(contextlib.AbstractContextManager):
    """Selects one module's adapter, or disables every adapter; reusable, unlike a generator
    context, because a measurement enters it once per batch."""

    def __init__(self, peft_model: Any, module: str | None) -> None:
        self.peft_model, self.module = peft_model, module
        self._inner: contextlib.AbstractContextManager[Any] | None = None

    def __enter__(self) -> None:
        if self.module is None:
            self._inner = self.peft_model.disable_adapter()
            self._inner.__enter__()
        else:
            self.peft_model.set_adapter(self.module)

    def __exit__(self, *exc: object) -> None:
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.__exit__(*exc)


class RoutedLanguageModel(LanguageModel):
    def __init__(self, peft_model: Any, tokenizer: Any, name: str, needs_bos: bool | None, router: Router) -> None:
        super().__init__(peft_model, tokenizer, name, needs_bos)
        self.router = router

    def _weights(self, module: str | None) -> _Weights:
        return _Weights(self.model, module)

    def routes(self, texts: Sequence[str]) -> list[tuple[list[int], contextlib.AbstractContextManager[Any]]]:
        groups: dict[str | None, list[int]] = {}
        for index, module in enumerate(self.router.route_prompts(texts)):
            groups.setdefault(module, []).append(index)
        return [(indices, self._weights(module)) for module, indices in groups.items()]

    def _scatter(self, texts: Sequence[str], run: Callable[[list[int]], list[T]]) -> list[T]:
        results: list[Any] = [None] * len(texts)
        for indices, weights in self.routes(texts):
            with weights:
                for index, value in zip(indices, run(indices), strict=True):
                    results[index] = value
        return results

    def generate_batch(self, conversations: Sequence[Sequence[Message]], max_new_tokens: int = 64,
                       temperature: float = 0.0, seed: int = 0, batch_size: int = 16) -> list[str]:
        texts = [conversation_route_text(c) for c in conversations]
        modules = self.router.route_prompts(texts)
        fused = [i for i, (m, c) in enumerate(zip(modules, conversations, strict=True)) if m is not None and quotes_notes(c)]
        plain = sorted(set(range(len(conversations))) - set(fused))
        answers: list[str] = [""] * len(conversations)
        single = self._scatter([texts[i] for i in plain], lambda idx: LanguageModel.generate_batch(
            self, [conversations[plain[i]] for i in idx], max_new_tokens, temperature, seed, batch_size))
        for index, answer in zip(plain, single, strict=True):
            answers[index] = answer
        by_module: dict[str, list[int]] = {}
        for index in fused:
            by_module.setdefault(modules[index], []).append(index)  # type: ignore[arg-type]
        for module, indices in by_module.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                for index, answer in zip(chunk, self._fused_answers(module, [conversations[i] for i in chunk], max_new_tokens,
                                                                      temperature, seed), strict=True):
                    answers[index] = answer
        return answers

    def _fused_answers(self, module: str, conversations: Sequence[Sequence[Message]], max_new_tokens: int,
                       temperature: float, seed: int) -> list[str]:
        """The base reading each conversation's notes times the module answering its bare question."""
        with_notes = [self.encode(self.format_chat(c)) for c in conversations]
        bare = [self.encode(self.format_chat(closed_book(routing_text(conversation_route_text(c))))) for c in conversations]
        for ids in (*with_notes, *bare):
            self.check_fits(len(ids), max_new_tokens)
        rows = product_of_experts(self.model, [(self._weights(None), with_notes), (self._weights(module), bare)],
                                  self._stop_ids(), self.tokenizer.pad_token_id, max_new_tokens, temperature, seed)
        return [self._clean(self.tokenizer.decode(r, skip_special_tokens=True)) for r in rows]

    def complete_batch(self, texts: Sequence[str], max_new_tokens: int = 8, batch_size: int = 16) -> list[str]:
        return self._scatter(texts, lambda idx: LanguageModel.complete_batch(
            self, [texts[i] for i in idx], max_new_tokens, batch_size))

    def score(self, messages: Sequence[Message], candidates: Sequence[str], normalize: bool = False) -> list[float]:
        """Log-likelihood of each candidate under what serves the prompt; for a claimed question
        with notes, the sum of both experts' (the log of their product, as decoding uses)."""
        [module] = self.router.route_prompts([conversation_route_text(messages)])
        with self._weights(module if not quotes_notes(messages) else None):
            scores = LanguageModel.score(self, messages, candidates, normalize)
        if module is None or not quotes_notes(messages):
            return scores
        with self._weights(module):
            bare = LanguageModel.score(self, closed_book(routing_text(conversation_route_text(messages))), candidates, normalize)
        return [a + b for a, b in zip(scores, bare, strict=True)]

    def modules_for(self, texts: Sequence[str]) -> list[str | None]:
        """The module each input would be served by (None: the base weights)."""
        return self.router.route_prompts(texts)
