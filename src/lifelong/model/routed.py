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
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lifelong.errors import MindError
from lifelong.learn.router import Router, routing_text
from lifelong.model.adapter_loading import load_modules
from lifelong.model.language_model import GENERATION_BATCH_ROWS, LanguageModel
from lifelong.model.route_plan import Message, RoutePlan, adapter_names, base_plan, conversation_route_text, route_plan, settle


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


def runs_on(runner: RoutedLanguageModel, lm: LanguageModel) -> bool:
    """Whether `runner` computes what `lm` computes, row by row: `lm` is the runner, or sits
    on the very same base tensors (weight_sharing_copy shares them) and is either unadapted
    or a routed library whose every module is loaded in the runner under the same name (a
    sleep's candidate loads its parent's library from the same adapter folders)."""
    if lm is runner:
        return True
    same_base = (lm.model.get_input_embeddings().weight.data_ptr()
                 == runner.model.get_input_embeddings().weight.data_ptr())
    if not same_base:
        return False
    if isinstance(lm, RoutedLanguageModel):
        return lm.module_names() <= runner.module_names()
    return not hasattr(lm.model, "peft_config")


def generate_together(runner: RoutedLanguageModel, requests: Sequence[tuple[LanguageModel, Sequence[Sequence[Message]]]],
                      max_new_tokens: int = 64) -> list[list[str]]:
    """Greedy answers of several models to their conversations, in shared batches on
    `runner`'s weights wherever `runs_on` holds (a model it cannot stand in for answers on
    its own): one pass for every request's served rows and one for the rows whose module
    stepped aside, instead of two passes per model. Decoding a batch on a CPU reads every
    weight once per token whatever its row count, so a gate asking a candidate and its parent
    the same probes pays for about one model's decoding; a row two models ask on the same
    weights (a parent and a candidate both reading a note on the base weights, a module's
    closed-book answer it already gave) is decoded once. Each answer is the one the model's
    own `generate_batch` gives, up to the float rounding of being padded beside other rows."""
    joint = [i for i, (lm, _) in enumerate(requests) if runs_on(runner, lm)]
    plans = {i: (requests[i][0].plan(requests[i][1]) if isinstance(requests[i][0], RoutedLanguageModel)
                 else base_plan(requests[i][1])) for i in joint}
    known: dict[str, str] = {}  # answer by (conversation, adapter): a row asked twice on the same weights runs once

    def decode(rows: list[tuple[Sequence[Message], str]]) -> None:
        todo = {row_key(c, a): (c, a) for c, a in rows if row_key(c, a) not in known}
        runner.ensure_loaded(a for _, a in todo.values())
        answers = LanguageModel.generate_batch(runner, [c for c, _ in todo.values()], max_new_tokens,
                                               adapters=[a for _, a in todo.values()]) if todo else []
        known.update(zip(todo, answers, strict=True))

    decode([(c, a) for i in joint for c, a in zip(requests[i][1], plans[i].served, strict=True)])
    decode([(c, a) for i in joint for c, a in zip(plans[i].aside_prompts, plans[i].aside_adapters, strict=True)])
    results: list[list[str]] = []
    for i, (lm, conversations) in enumerate(requests):
        if i not in plans:
            results.append(lm.generate_batch(conversations, max_new_tokens))
            continue
        plan = plans[i]
        results.append(settle(plan, [known[row_key(c, a)] for c, a in zip(conversations, plan.served, strict=True)],
                              [known[row_key(c, a)] for c, a in zip(plan.aside_prompts, plan.aside_adapters, strict=True)]))
    return results


def row_key(conversation: Sequence[Message], adapter: str) -> str:
    """One generation row's identity: the same conversation on the same adapter decodes alike."""
    return json.dumps([adapter, list(conversation)], sort_keys=True)


class RoutedLanguageModel(LanguageModel):
    """`unloaded`: modules the router may pick that are not in the PeftModel yet, each with
    its saved adapter folder; each is loaded the first time an input is routed to it. A
    question routes to one module, so `ask` on a library of a hundred topics opens one
    module, not a hundred (31 s; README, "Opening a module library"), and a sleep's gate
    opens the modules its probes reach, not the whole library once per topic."""

    def __init__(self, peft_model: Any, tokenizer: Any, name: str, needs_bos: bool | None, router: Router,
                 unloaded: Mapping[str, Path] | None = None) -> None:
        super().__init__(peft_model, tokenizer, name, needs_bos)
        self.router = router
        self.unloaded = dict(unloaded or {})

    def module_names(self) -> set[str]:
        """Every module this library's router can pick, loaded or not (not what else a shared
        PeftModel holds: a parent's view beside its candidate is the parent's library)."""
        return set(self.router.names)

    def ensure_loaded(self, modules: Iterable[str | None]) -> None:
        """Load the named modules that are not in memory yet (None and BASE_ROWS need none).
        Two views of one PeftModel (a candidate and its parent) may share it: whatever either
        loaded, the other finds in the PeftModel and does not load again."""
        wanted = {m: self.unloaded[m] for m in dict.fromkeys(modules) if m in self.unloaded and m not in self.model.peft_config}
        gone = [m for m, folder in wanted.items() if not Path(folder).is_dir()]
        if gone:
            raise MindError(f"module {gone[0]} was forgotten or pruned after this library was opened; "
                            "ask again (the mind reopens its active version)")
        if wanted:
            load_modules(self.model, wanted)
        self.unloaded = {m: path for m, path in self.unloaded.items() if m not in self.model.peft_config}

    def weights_for(self, module: str | None) -> _Weights:
        """The weights one module answers with (None: the exact base weights), as a reusable context."""
        self.ensure_loaded([module])
        return _Weights(self.model, module)

    def routes(self, texts: Sequence[str]) -> list[tuple[list[int], contextlib.AbstractContextManager[Any]]]:
        """The inputs grouped by route, each group with its weights (for one-route passes: scoring, KL)."""
        groups: dict[str | None, list[int]] = {}
        for index, module in enumerate(self.router.route_prompts(texts)):
            groups.setdefault(module, []).append(index)
        return [(indices, self.weights_for(module)) for module, indices in groups.items()]

    def adapter_names(self, modules: Sequence[str | None]) -> list[str]:
        """The adapter each row of a mixed batch runs with (BASE_ROWS: no module claimed it)."""
        return adapter_names(modules)

    def plan(self, conversations: Sequence[Sequence[Message]]) -> RoutePlan:
        """The adapter each conversation is served with, and the ones whose module stepped
        aside for the notes, to be asked again closed-book (see `generate_batch`)."""
        return route_plan(self.router, conversations)

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
            self.ensure_loaded(adapters)
            return LanguageModel.generate_batch(self, conversations, max_new_tokens, temperature, seed, batch_size, adapters)
        plan = self.plan(conversations)
        self.ensure_loaded([*plan.served, *plan.aside_adapters])
        answers = LanguageModel.generate_batch(self, conversations, max_new_tokens, temperature, seed, batch_size,
                                               adapters=plan.served)
        closed = LanguageModel.generate_batch(self, plan.aside_prompts, max_new_tokens, temperature, seed, batch_size,
                                              adapters=plan.aside_adapters) if plan.aside else []
        return settle(plan, answers, closed)

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
        chosen = self.adapter_names(self.router.route_prompts(texts)) if adapters is None else list(adapters)
        self.ensure_loaded(chosen)
        return LanguageModel.complete_batch(self, texts, max_new_tokens, batch_size, chosen)

    def score_replies(self, conversations: Sequence[Sequence[Message]], replies: Sequence[str],
                      normalize: bool = False) -> list[float]:
        """Each pair scored on its conversation's route, the pairs of one route in shared batches."""
        scores = [0.0] * len(conversations)
        for indices, weights in self.routes([conversation_route_text(c) for c in conversations]):
            with weights:
                routed = LanguageModel.score_replies(self, [conversations[i] for i in indices],
                                                     [replies[i] for i in indices], normalize)
            for index, value in zip(indices, routed, strict=True):
                scores[index] = value
        return scores

    def modules_for(self, texts: Sequence[str]) -> list[str | None]:
        """The module each input would be served by (None: the base weights)."""
        return self.router.route_prompts(texts)
