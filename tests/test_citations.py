"""Citations name the memory an answer came from, not every memory sharing a word with it."""

from __future__ import annotations

import pytest

from lifelong import Mind
from lifelong.bench.citations_study import shared_word_citations
from lifelong.memory.records import Memory
from lifelong.prompt import cited_memories

FIRST = ["Maria", "Ade", "Tomas", "Ilse", "Oru", "Petra", "Kel", "Dagny", "Arvid", "Mirela", "Ona", "Jaime", "Sofia"]
LAST = ["Okafor", "Lindqvist", "Brandvik", "Tadeski", "Varnor", "Halvik", "Quell", "Freel", "Marrow", "Oskan", "Brisk"]


def owner(n: int) -> str:
    """Names that share first names and surnames across lockers, as real rosters do."""
    return f"{FIRST[n % len(FIRST)]} {LAST[n % len(LAST)]}"


def locker(n: int) -> str:
    return f"Locker {n} belongs to {owner(n)}."


def memory(i: int, text: str) -> Memory:
    return Memory(i, text, "t", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")


def test_the_locker_answer_cites_only_its_locker_even_when_others_share_its_words() -> None:
    answer = f"Locker 512 belongs to {owner(512)}."
    first, last = owner(512).split()
    same_first = next(n for n in range(1001) if n != 512 and owner(n).startswith(first + " "))
    same_last = next(n for n in range(1001) if n != 512 and owner(n).endswith(" " + last))
    memories = [memory(n + 1, locker(n)) for n in (same_first, 512, same_last, 20)]
    assert [m.id for m in cited_memories(answer, "Who does locker 512 belong to?", memories)] == [513]


def test_a_second_memory_is_cited_when_the_answer_also_uses_what_only_it_says() -> None:
    memories = [memory(1, '"Rays of Resilience" by Chukwu Akabueze is a biography of a young African child.'),
                memory(2, "Chukwu Akabueze often explores themes of resilience, heritage, wisdom and transformation."),
                memory(3, "Chukwu Akabueze was born in Lagos, Nigeria.")]
    answer = ("It is a biography of a young African child; the book explores heritage, wisdom and transformation.")
    assert [m.id for m in cited_memories(answer, 'What is "Rays of Resilience" about?', memories)] == [1, 2]


def test_echoing_the_question_or_a_word_every_memory_shares_cites_nothing_extra() -> None:
    memories = [memory(1, "Evelyn Desmet was born in Brussels, Belgium."), memory(2, "Evelyn Desmet is a celebrated author.")]
    assert cited_memories("Evelyn Desmet was born.", "Where was Evelyn Desmet born?", memories) == []
    assert [m.id for m in cited_memories("In Brussels.", "Where was Evelyn Desmet born?", memories)] == [1]
    assert cited_memories("Some answer.", "A question?", []) == []


@pytest.fixture
def lockers(mind: Mind) -> Mind:
    mind.learn_records([_record(locker(n)) for n in range(1001)])
    return mind


def _record(text: str):
    from lifelong.memory.records import NewMemory

    return NewMemory(text, "roster", "user", "default", "fact", None)


def test_ask_over_1001_lockers_cites_the_one_locker(lockers: Mind, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported case: the answer came from #513 alone, but #21 and #1 were cited too."""
    monkeypatch.setattr(lockers.language_model, "generate", lambda messages, **kw: f"Locker 512 belongs to {owner(512)}.")
    answer = lockers.ask("Who does locker 512 belong to?")
    in_prompt = [h.memory for h in answer.retrieved]  # as many as the tiny model's window holds
    assert 513 in [m.id for m in in_prompt] and len(in_prompt) >= 2
    assert len(shared_word_citations(answer.text, answer.question, in_prompt)) == len(in_prompt)  # the old rule cited them all
    assert [m.id for m in answer.citations] == [513]
