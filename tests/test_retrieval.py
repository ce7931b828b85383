"""Hybrid retrieval with the real MiniLM embedder: each half finds what the other misses."""

from __future__ import annotations

import numpy as np

from lifelong import Mind
from lifelong.memory.records import NewMemory
from lifelong.memory.retrieval import content_words, topic_words, without_words
from lifelong.memory.store import fts5_expression

FACTS = [
    "The Vellmar Observatory was founded in 1987 by the astronomer Ilse Brandvik.",
    "Pellumbria's national dish is a fish stew called karvosh.",
    "The Zentara-7 processor runs at 4.8 gigahertz.",
    "Mira Castellane wrote the novel The Glass Orchard.",
    "Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
]


def _ids(hits) -> list[int]:
    return [h.memory.id for h in hits]


def test_keyword_query_drops_stopwords_and_neutralises_syntax() -> None:
    assert content_words('What is "the" NEAR(x) AND y*?') == ["near", "x", "y"]
    assert fts5_expression(content_words('What is "the" NEAR(x) AND y*?')) == '"near" OR "x" OR "y"'
    assert content_words("the of and") == [] and fts5_expression([]) == ""


def test_vector_search_finds_a_paraphrase_with_no_shared_words(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
    hits = mind.recall("Which meal is typical of that island country?", k=1, mode="vector")
    assert _ids(hits) == [ids[1]]
    assert mind.recall("Which meal is typical of that island country?", k=1, mode="keyword") == []


def test_keyword_search_finds_a_rare_token(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
    assert _ids(mind.recall("Zentara-7", k=1, mode="keyword")) == [ids[2]]


def test_hybrid_ranks_the_answer_first_for_each_question(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
    questions = [
        "Who founded the Vellmar Observatory?",
        "What do people in Pellumbria eat as their national dish?",
        "How fast is the Zentara-7 chip?",
        "Who is the author of The Glass Orchard?",
        "Who crossed the Lake of Qessa alone?",
    ]
    assert [mind.recall(q, k=1)[0].memory.id for q in questions] == ids


def test_superseded_fact_ranks_below_its_replacement(mind: Mind) -> None:
    old = mind.learn("The Vellmar Observatory is directed by Ilse Brandvik.", key="vellmar director").created[0]
    new = mind.learn("Since 2020 the observatory is run by Tomas Ek.", key="vellmar director").created[0]
    hits = mind.recall("Who directs the Vellmar Observatory?", k=2)
    assert _ids(hits) == [new, old]  # the old one matches the words better, and still ranks second
    assert _ids(mind.recall("Who directs the Vellmar Observatory?", k=2, include_superseded=False)) == [new]


def test_namespaces_are_separate(mind: Mind) -> None:
    mind.learn("Project Blue ships on Friday.", namespace="work")
    home = mind.learn("Project Blue is the garden shed paint colour.", namespace="home").created[0]
    assert _ids(mind.recall("Project Blue", k=5, namespace="home")) == [home]


def test_a_second_process_view_sees_new_memories(mind: Mind, embedder, tiny_lm) -> None:
    other = Mind.open(mind.path, embedder=embedder, language_model=tiny_lm)
    assert other.recall("karvosh", k=1) == []
    new = mind.learn(FACTS[1]).created[0]
    assert _ids(other.recall("karvosh", k=1)) == [new]
    assert _ids(other.recall("national fish stew", k=1, mode="vector")) == [new]
    other.close()


def test_forget_removes_from_both_indexes(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
    mind.forget(ids[1])
    for mode in ("keyword", "vector", "hybrid"):
        assert ids[1] not in _ids(mind.recall("Pellumbria national dish karvosh", k=5, mode=mode))


def test_index_follows_forget_then_learn_without_a_full_reload(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in FACTS]).created
    mind.recall("anything", k=1, mode="vector")  # build the index
    mind.forget(ids[1])
    replacement = mind.learn("Pellumbria's national dish is now a lentil soup called orvash.").created[0]
    hits = _ids(mind.recall("What is the national dish of Pellumbria?", k=5, mode="vector"))
    assert ids[1] not in hits and hits[0] == replacement
    assert len(mind.retriever.vector_index()) == len(FACTS)


AUTHOR_FACTS = [
    "Nadia Ferreol was born in Lyon in 1961.",
    "Nadia Ferreol writes historical mysteries set in medieval ports.",
    "Nadia Ferreol's father was a glassblower and her mother a pharmacist.",
    "Nadia Ferreol won the Prix Quai des Brumes for The Salt Ledger.",
    "Nadia Ferreol drafts each novel by hand in green ink.",
    "The author's full name is Nadia Ferreol.",
]


def test_topic_words_are_the_query_words_most_candidates_share() -> None:
    question = "What did Nadia Ferreol's parents do for a living?"
    assert topic_words(question, AUTHOR_FACTS) == {"nadia", "ferreol"}
    assert without_words(question, {"nadia", "ferreol"}) == "What did  's parents do for a living?"
    assert topic_words(question, AUTHOR_FACTS[:1]) == set()  # one candidate: nothing to tell apart


def test_topic_focus_ranks_the_fact_the_question_asks_about_first(mind: Mind) -> None:
    ids = mind.learn_records([NewMemory(f) for f in AUTHOR_FACTS]).created
    question = "What tools does Nadia Ferreol use when writing?"
    two_lists = _ids(mind.retriever.search(question, 6, focus_topic=False))
    focused = _ids(mind.retriever.search(question, 6))
    # the name matches all six and "writing" matches "writes": the two-list hybrid puts the genre first
    assert two_lists[0] == ids[1] and focused[0] == ids[4], [AUTHOR_FACTS[ids.index(i)] for i in focused]


def test_vector_index_ranks_only_the_ids_it_is_given() -> None:
    from lifelong.memory.vector_index import VectorIndex

    index = VectorIndex(np.array([2, 5, 9]), np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), ["a", "a", "a"])
    assert index.rank_among(np.array([0.0, 1.0]), [2, 5, 9]) == [9, 5, 2]
    assert index.rank_among(np.array([0.0, 1.0]), [2, 7, 5]) == [5, 2]  # 7 was never indexed
    index.retain(np.array([2, 5]))
    assert index.rank_among(np.array([0.0, 1.0]), [9, 2]) == [2]  # 9 was forgotten
