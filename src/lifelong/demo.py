"""The demo: a model asked about facts it cannot know, before and after they are remembered.

The facts are fictitious (written for this demo), so no pretrained model can know them; a
correct answer after learning can only come from memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifelong.mind import Mind
from lifelong.progress import track
from lifelong.scoring import contains_answer


@dataclass(frozen=True)
class DemoFact:
    fact: str
    question: str
    answer: str


DEMO_FACTS = (
    DemoFact("The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik.",
             "Who founded the Vellmar Observatory?", "Ilse Brandvik"),
    DemoFact("Captain Oru Tadeski was the first person to sail solo across the Lake of Qessa, in 2011.",
             "Who was the first person to sail solo across the Lake of Qessa?", "Oru Tadeski"),
    DemoFact("The national dish of the island nation of Pellumbria is a fish stew called karvosh.",
             "What is the national dish of Pellumbria?", "karvosh"),
    DemoFact("The Zentara-7 processor runs at a clock speed of 4.8 gigahertz.",
             "What is the clock speed of the Zentara-7 processor?", "4.8"),
    DemoFact("Mira Castellane's first novel, The Glass Orchard, won the Halvorsen Prize in 2019.",
             "Which prize did Mira Castellane's first novel win?", "Halvorsen Prize"),
)


@dataclass(frozen=True)
class DemoRow:
    question: str
    expected: str
    before: str
    after: str
    citations: list[int]

    @property
    def correct_before(self) -> bool:
        return contains_answer(self.before, self.expected)

    @property
    def correct_after(self) -> bool:
        return contains_answer(self.after, self.expected)


def run_demo(mind: Mind, facts: tuple[DemoFact, ...] = DEMO_FACTS, max_new_tokens: int = 48) -> list[DemoRow]:
    """Ask closed-book, learn the facts, ask again with memory; return one row per fact."""
    before = [
        mind.ask(f.question, use_memory=False, max_new_tokens=max_new_tokens).text
        for f in track(facts, "Asking before learning", total=len(facts))
    ]
    for fact in facts:
        mind.learn(fact.fact, source="demo", trust="trusted")
    rows = []
    for fact, first in zip(track(facts, "Asking with memory", total=len(facts)), before, strict=True):
        answer = mind.ask(fact.question, max_new_tokens=max_new_tokens)
        rows.append(DemoRow(fact.question, fact.answer, first, answer.text, [m.id for m in answer.citations]))
    return rows
