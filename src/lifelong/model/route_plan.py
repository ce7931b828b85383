"""How a routed library answers a batch of conversations, decided without torch.

The router picks each conversation's module from its last user turn; where the prompt quotes
notes, a module that claims the bare question may step aside for them, and its closed-book
answer is kept only when the reading misses or the notes confirm it (`settle`). The torch
model (model/routed.py) and the ONNX Runtime one (model/onnx_model.py) both answer by this
plan, so they serve the same module on the same input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from lifelong.learn.router import Router, quoted_notes, routing_text
from lifelong.prompt import cited_indices, closed_book, confirmed_recall, reading_names_more

Message = dict[str, str]
# In a mixed batch, the rows that run the base weights with every adapter off (PEFT's name).
BASE_ROWS = "__base__"


def conversation_route_text(messages: Sequence[Message]) -> str:
    """The last user turn, quoted notes included (the router reads the question out of it)."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


class RoutePlan(NamedTuple):
    """How a routed model answers a batch of conversations: the adapter each row runs with
    (BASE_ROWS: the base weights), and the rows whose module stepped aside for the notes in
    the prompt, each asked again closed-book with the adapter that claimed its question."""

    texts: list[str]  # each conversation's routing text (its last user turn, notes included)
    served: list[str]
    aside: list[int]
    aside_prompts: list[list[Message]]
    aside_adapters: list[str]


def settle(plan: RoutePlan, answers: Sequence[str], closed: Sequence[str]) -> list[str]:
    """The answers served: the reading of the notes, or, where the module stepped aside, its
    closed-book answer when the reading draws on none of the notes or the notes confirm the
    recall (see RoutedLanguageModel.generate_batch)."""
    served = list(answers)
    for i, answer in zip(plan.aside, closed, strict=True):
        question = routing_text(plan.texts[i])
        notes = quoted_notes(plan.texts[i])
        if not cited_indices(served[i], question, notes) or (
                confirmed_recall(answer, question, notes) and not reading_names_more(answer, served[i], question, notes)):
            served[i] = answer
    return served


def base_plan(conversations: Sequence[Sequence[Message]]) -> RoutePlan:
    """Every conversation on the base weights, nothing stepping aside (an unadapted model)."""
    return RoutePlan([conversation_route_text(c) for c in conversations], [BASE_ROWS] * len(conversations), [], [], [])


def route_plan(router: Router, conversations: Sequence[Sequence[Message]]) -> RoutePlan:
    """The adapter each conversation is served with (BASE_ROWS where no module claims it), and
    the rows whose module stepped aside for the notes, to be asked again closed-book."""
    texts = [conversation_route_text(c) for c in conversations]
    served = router.route_prompts(texts)
    questions = [routing_text(t) for t in texts]
    claimed = router.route(questions)
    aside = [i for i in range(len(texts)) if claimed[i] is not None and served[i] is None]
    return RoutePlan(texts, adapter_names(served), aside, [closed_book(questions[i]) for i in aside],
                     adapter_names([claimed[i] for i in aside]))


def adapter_names(modules: Sequence[str | None]) -> list[str]:
    """The adapter each row of a mixed batch runs with (BASE_ROWS: no module claimed it)."""
    return [BASE_ROWS if module is None else module for module in modules]
