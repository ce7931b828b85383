"""A base model with a library of knowledge modules, each input served by the module its
router picks or by the exact base weights.

The modules are PEFT LoRA adapters loaded side by side into one PeftModel (one copy of the
base weights, a few MB per module). Generation runs every route in shared batches (PEFT's
mixed-batch inference: each row adds only its own adapter's LoRA product to the base layer's
output, and a row no module claims adds none, so it gets the base model's answer exactly); a
single input's scoring or streaming selects its adapter, or disables every adapter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from lifelong.learn.router import Router, quoted_notes, routing_text
from lifelong.model.language_model import BASE_ROWS, GENERATION_BATCH_ROWS, LanguageModel, Message
from lifelong.prompt import cited_indices, closed_book, confirmed_recall, reading_names_more


def conversation_route_text(messages: Sequence[Message]) -> str:
    """The last user turn, quoted notes included (the router reads the question out of it)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


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

    def weights_for(self, module: str | None) -> _Weights:
        """The weights one module answers with (None: the exact base weights), as a reusable context."""
        return _Weights(self.model, module)

    def routes(self, texts: Sequence[str]) -> list[tuple[list[int], contextlib.AbstractContextManager[Any]]]:
        """The inputs grouped by route, each group with its weights (for one-route passes: scoring, KL)."""
        groups: dict[str | None, list[int]] = {}
        for index, module in enumerate(self.router.route_prompts(texts)):
            groups.setdefault(module, []).append(index)
        return [(indices, self.weights_for(module)) for module, indices in groups.items()]

    def adapter_names(self, modules: Sequence[str | None]) -> list[str]:
        """The adapter each row of a mixed batch runs with (BASE_ROWS: no module claimed it)."""
        return [BASE_ROWS if module is None else module for module in modules]

    def generate_batch(self, conversations: Sequence[Sequence[Message]], max_new_tokens: int = 64,
                       temperature: float = 0.0, seed: int = 0, batch_size: int = GENERATION_BATCH_ROWS,
                       adapters: Sequence[str] | None = None) -> list[str]:
        """Each conversation on its route, rows of every route in shared batches. Where a module
        stepped aside for the notes, it also answers the bare question, and its answer is served
        instead of the base's reading when the base's answer draws on none of the notes (it
        missed what they say), or when the notes confirm the module's answer as the sentence
        that answers (`confirmed_recall`): it knows the fact without having to read for it,
        unless the reading says all the recall says and names more from the notes
        (`reading_names_more`): then the recall is the vaguer answer."""
        if adapters is not None:  # the caller chose every row's weights: no routing, no fallback
            return LanguageModel.generate_batch(self, conversations, max_new_tokens, temperature, seed, batch_size, adapters)
        texts = [conversation_route_text(c) for c in conversations]
        served = self.router.route_prompts(texts)
        answers = LanguageModel.generate_batch(self, conversations, max_new_tokens, temperature, seed, batch_size,
                                               adapters=self.adapter_names(served))
        questions = [routing_text(t) for t in texts]
        claimed = self.router.route(questions)
        stepped_aside = [i for i in range(len(texts)) if claimed[i] is not None and served[i] is None]
        if not stepped_aside:
            return answers
        closed = LanguageModel.generate_batch(self, [closed_book(questions[i]) for i in stepped_aside], max_new_tokens,
                                              temperature, seed, batch_size,
                                              adapters=self.adapter_names([claimed[i] for i in stepped_aside]))
        for i, answer in zip(stepped_aside, closed, strict=True):
            notes = quoted_notes(texts[i])
            if not cited_indices(answers[i], questions[i], notes) or (
                    confirmed_recall(answer, questions[i], notes)
                    and not reading_names_more(answer, answers[i], questions[i], notes)):
                answers[i] = answer
        return answers

    def generation_weights(self, messages: Sequence[Message]) -> contextlib.AbstractContextManager[Any]:
        [(_, weights)] = self.routes([conversation_route_text(messages)])
        return weights

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 64, temperature: float = 0.0,
               seed: int = 0) -> Iterator[str]:
        """Streamed on its route; where the grounded fallback of `generate_batch` may apply (a
        module stepped aside for the notes), the answer is only known once the base's answer
        is, so it comes in one piece."""
        text = conversation_route_text(messages)
        question = routing_text(text)
        if self.router.route([question])[0] is not None and self.router.route_prompts([text])[0] is None:
            yield self.generate_batch([messages], max_new_tokens, temperature, seed)[0]
            return
        yield from LanguageModel.stream(self, messages, max_new_tokens, temperature, seed)

    def complete_batch(self, texts: Sequence[str], max_new_tokens: int = 8, batch_size: int = GENERATION_BATCH_ROWS,
                       adapters: Sequence[str] | None = None) -> list[str]:
        return LanguageModel.complete_batch(self, texts, max_new_tokens, batch_size,
                                            self.adapter_names(self.router.route_prompts(texts)) if adapters is None else adapters)

    def score(self, messages: Sequence[Message], candidates: Sequence[str], normalize: bool = False) -> list[float]:
        [(_, weights)] = self.routes([conversation_route_text(messages)])
        with weights:
            return LanguageModel.score(self, messages, candidates, normalize)

    def modules_for(self, texts: Sequence[str]) -> list[str | None]:
        """The module each input would be served by (None: the base weights)."""
        return self.router.route_prompts(texts)
