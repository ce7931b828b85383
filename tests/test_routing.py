"""A routed module library: each module acts only on inputs about what it learned, and the
exact base weights answer everything else."""

from __future__ import annotations

import pytest
import torch

from lifelong.versions import Verdict
from lifelong import consolidate
from lifelong.consolidate import SleepConfig
from lifelong.learn.router import ModuleKeys, Router, key_texts, quoted_memory_ids, quoted_notes, routing_text
from lifelong.learn.synthesis import TrainingExample, context_examples
from lifelong.learn.trainer import TrainConfig
from lifelong.memory.records import Memory
from lifelong.mind import Mind
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import build_messages, cited_indices, closed_book, confirmed_recall, reading_names_more

BRIDGE = "The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964."
OBSERVATORY = "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik."
CAPTAIN = "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011."
UNRELATED = ("What is the capital of France?", "Write a short greeting to a friend.", "How many legs does a spider have?")
LOUD = SleepConfig(strategy="routed", train=TrainConfig(rank=8, epochs=30, learning_rate=1e-2, bf16=False), distill=False)


def test_the_router_claims_questions_about_its_memories_and_nothing_else(embedder) -> None:
    router = Router(embedder, [ModuleKeys("v1", embedder.embed(key_texts([BRIDGE, OBSERVATORY])))])
    assert router.route(["Who designed the Korvath Bridge?", "When was the Vellmar Observatory founded?"]) == ["v1", "v1"]
    assert router.route(list(UNRELATED)) == [None, None, None]


def test_the_nearest_module_wins(embedder) -> None:
    router = Router(embedder, [ModuleKeys("v1", embedder.embed([BRIDGE])), ModuleKeys("v2", embedder.embed([CAPTAIN]))])
    assert router.route(["Who designed the Korvath Bridge?", "Who sailed across the Lake of Qessa?"]) == ["v1", "v2"]


def test_a_module_steps_aside_when_the_prompt_quotes_a_memory_it_learned(embedder) -> None:
    import numpy as np

    router = Router(embedder, [ModuleKeys("v1", embedder.embed([BRIDGE, OBSERVATORY]), np.array([1, 3]))])
    learned = Memory(1, BRIDGE, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
    other = Memory(2, CAPTAIN, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
    sibling = Memory(3, OBSERVATORY, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")  # learned too
    question = "Who designed the Korvath Bridge?"
    prompts = [build_messages(question, notes)[-1]["content"] for notes in ([learned, other], [other], [sibling], [])]
    # the base reads the note that answers; the module covers a retrieval miss, even among notes it learned
    assert router.route_prompts(prompts) == [None, "v1", "v1", "v1"]


def test_a_module_steps_aside_for_any_note_it_learned_that_is_close_to_the_question(embedder) -> None:
    """Two chunks of one passage: the question's nearest key is one, the prompt quotes the other
    (also within the radius). The base reads the quoted chunk as retrieval alone would; before,
    the module read it itself and paraphrased the answer away (SQuAD gate, passage "Force")."""
    import numpy as np

    repainted = "The Korvath Bridge over the river Elsin was repainted red in 1990 by the city council."
    router = Router(embedder, [ModuleKeys("v1", embedder.embed([BRIDGE, repainted, CAPTAIN]), np.array([1, 5, 2]))])
    question = "Who designed the Korvath Bridge over the river Elsin?"
    to_bridge, to_repainted = (embedder.embed([question]) @ embedder.embed([BRIDGE, repainted]).T)[0]
    assert to_bridge > to_repainted >= router.radius  # the premise: BRIDGE is nearest, the other chunk close too
    chunk = Memory(5, repainted, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
    captain = Memory(2, CAPTAIN, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
    prompts = [build_messages(question, notes)[-1]["content"] for notes in ([chunk], [captain])]
    assert router.route_prompts(prompts) == [None, "v1"]  # a learned note far from the question does not count


def test_routing_reads_the_question_not_the_notes_quoted_with_it() -> None:
    note = Memory(1, BRIDGE, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
    content = build_messages("What is the capital of France?", [note])[-1]["content"]
    assert routing_text(content) == "What is the capital of France?"


def test_context_rows_put_the_memory_among_distractors_and_distractor_only_rows_leave_it_out() -> None:
    memories = [Memory(i, text, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
                for i, text in enumerate([BRIDGE, OBSERVATORY, CAPTAIN], start=1)]
    question = TrainingExample(closed_book("Who designed the Korvath Bridge?"), "Petra Lindqvist.", (1,), "distilled")
    statement = TrainingExample(closed_book("Tell me a fact."), BRIDGE, (1,), "statement")
    rows = context_examples([question, statement], memories, distractor_only_share=1.0)
    assert [r.kind for r in rows] == ["context", "distractors"]
    assert BRIDGE in rows[0].prompt[-1]["content"] and rows[0].prompt[-1]["content"].endswith("Who designed the Korvath Bridge?")
    assert BRIDGE not in rows[1].prompt[-1]["content"] and "<memory" in rows[1].prompt[-1]["content"]
    assert all(r.answer == "Petra Lindqvist." for r in rows)
    many = [TrainingExample(closed_book(f"Question {i}?"), "Petra Lindqvist.", (1,), "distilled") for i in range(200)]
    kinds = [r.kind for r in context_examples(many, memories)]
    assert kinds.count("context") == 200 and 30 <= kinds.count("distractors") <= 70  # a quarter, by default


def test_context_rows_hold_at_most_the_configured_number_of_distractors() -> None:
    memories = [Memory(i, text, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
                for i, text in enumerate([BRIDGE, OBSERVATORY, CAPTAIN], start=1)]
    many = [TrainingExample(closed_book(f"Question {i}?"), "Petra Lindqvist.", (1,), "distilled") for i in range(100)]

    def notes_per_row(distractors: int) -> set[int]:
        rows = context_examples(many, memories, distractors=distractors, distractor_only_share=0.0)
        return {r.prompt[-1]["content"].count("<memory") for r in rows}

    assert notes_per_row(1) == {2}  # the right note and exactly one other
    assert notes_per_row(2) == {2, 3}  # one or two others, drawn per row


def test_without_note_rows_a_sleep_keeps_exactly_the_distractor_only_rows() -> None:
    memories = [Memory(i, text, "s", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")
                for i, text in enumerate([BRIDGE, OBSERVATORY, CAPTAIN], start=1)]
    many = [TrainingExample(closed_book(f"Question {i}?"), "Petra Lindqvist.", (1,), "distilled") for i in range(100)]
    every = context_examples(many, memories)
    without = context_examples(many, memories, note_rows=False)
    assert without == [r for r in every if r.kind == "distractors"] and without  # the same draws, the note rows left out
    assert all(BRIDGE not in r.prompt[-1]["content"] for r in without)


def test_by_default_only_an_unrouted_sleep_trains_rows_that_quote_its_memory(mind: Mind) -> None:
    # A routed module steps aside whenever its memory is quoted, so rows teaching it to read that
    # note would teach a reading it never serves; an unrouted module answers with its notes quoted.
    for fact in (BRIDGE, OBSERVATORY, CAPTAIN):
        mind.learn(fact)
    fast = TrainConfig(rank=4, epochs=1, bf16=False)
    kinds = {}
    for strategy in ("routed+context", "context"):  # the gate refuses a tiny model's module: the next sleep retrains the same memories
        manifest = mind.sleep(SleepConfig(strategy=strategy, train=fast, topic_modules=False, distill=False)).manifest
        kinds[strategy] = {e.kind for e in consolidate.read_examples(mind.versions.path(manifest.id) / consolidate.TRAINING_DATA)}
        assert manifest.hyperparameters.get("note_rows", True) is (strategy == "context")
        # and only a routed module trains on its answers' gradients alone by default (README, "Answer gradients only")
        assert manifest.hyperparameters["answer_gradients_only"] is (strategy == "routed+context")
    assert "context" not in kinds["routed+context"] and "context" in kinds["context"]
    assert kinds["routed+context"] - {"distractors"} == kinds["context"] - {"context", "distractors"}  # the rest is the same recipe


@pytest.fixture
def passing_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny random model never passes the real acquisition gate; these tests are about what a
    # promoted routed library serves, so the verdict is forced to pass.
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))


def _closed_book(mind: Mind, questions: tuple[str, ...] | list[str]) -> list[str]:
    return mind.language_model.generate_batch([closed_book(q) for q in questions], max_new_tokens=12)


def test_a_routed_module_changes_its_topic_and_leaves_other_answers_byte_identical(mind: Mind, passing_gate) -> None:
    questions = ["What do you know about Korvath Bridge?", "What do you know about Vellmar Observatory?"]
    mind.learn(BRIDGE)
    mind.learn(OBSERVATORY)
    base_topic, base_other = _closed_book(mind, questions), _closed_book(mind, UNRELATED)
    base_logits = _logits(mind, "The capital of France is")
    result = mind.sleep(LOUD)
    assert result.activated and result.manifest.modules == [result.manifest.id]
    assert _closed_book(mind, questions) != base_topic  # the module answers its own topic
    assert _closed_book(mind, UNRELATED) == base_other  # and nothing else
    assert torch.equal(_logits(mind, "The capital of France is"), base_logits)
    assert result.manifest.metrics["retention_agreement"] == 1.0 and result.manifest.metrics["kl_drift"] == 0.0


def _logits(mind: Mind, text: str) -> torch.Tensor:
    lm = mind.language_model
    [(_, weights)] = lm.routes([text])
    with weights, torch.inference_mode():
        return lm.model(input_ids=torch.tensor([lm.encode(text)])).logits


def test_a_second_sleep_adds_a_module_and_leaves_the_first_untouched(mind: Mind, passing_gate) -> None:
    first = ["What do you know about Korvath Bridge?"]
    mind.learn(BRIDGE)
    v1 = mind.sleep(LOUD).manifest
    after_first = _closed_book(mind, first)
    mind.learn(CAPTAIN)
    v2 = mind.sleep(LOUD).manifest
    assert v2.modules == [v1.id, v2.id] and v2.own_memory_ids == [2] and sorted(v2.memory_ids) == [1, 2]
    assert _closed_book(mind, first) == after_first  # module v1 serves its topic exactly as before
    mind.rollback(v1.id)
    assert _closed_book(mind, first) == after_first


def test_rows_of_every_route_share_a_batch_and_get_the_answers_each_route_gives_alone(mind: Mind, passing_gate) -> None:
    mind.learn(BRIDGE)
    mind.sleep(LOUD)
    mind.learn(CAPTAIN)
    mind.sleep(LOUD)
    lm = mind.language_model
    questions = ["What do you know about Korvath Bridge?", "What do you know about Captain Oru Tadeski?", *UNRELATED]
    routes = lm.modules_for(questions)
    assert len(set(routes)) == 3 and routes[2:] == [None] * len(UNRELATED)  # two modules and the base weights
    alone_answers, alone_completions = [], []
    for question, module in zip(questions, routes, strict=True):
        with lm.weights_for(module):  # one row, its route's weights selected the old way
            alone_answers += LanguageModel.generate_batch(lm, [closed_book(question)], max_new_tokens=12)
            alone_completions += LanguageModel.complete_batch(lm, [question], max_new_tokens=12)
    assert _closed_book(mind, questions) == alone_answers
    assert lm.complete_batch(questions, max_new_tokens=12) == alone_completions


def test_a_candidate_its_parent_and_the_base_decode_together_with_the_answers_each_gives_alone(
        mind: Mind, passing_gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's generations share batches on the candidate's weights: every model's
    answers, closed-book and with notes (where a module steps aside and answers again
    closed-book), are what it gives on its own, in under half the decoding passes."""
    from lifelong.evaluate.probes import acquisition_probes, probe_messages
    from lifelong.model.routed import generate_together, runs_on

    bridge = mind.learn(BRIDGE).results[0].id
    v1 = mind.sleep(LOUD).manifest
    captain = mind.learn(CAPTAIN).results[0].id
    mind.sleep(LOUD)
    candidate, parent, base = mind.language_model, mind.version_model(v1.id), mind.base_model
    assert runs_on(candidate, parent) and runs_on(candidate, base) and runs_on(candidate, candidate)
    memories = [mind.store.get(bridge), mind.store.get(captain)]
    probes = acquisition_probes(memories)
    notes = {m.id: m for m in memories}
    closed, read = [probe_messages(p) for p in probes], [probe_messages(p, notes) for p in probes]
    requests = [(candidate, closed), (parent, closed), (base, closed), (candidate, read), (parent, read), (base, read)]
    from lifelong.model import language_model

    passes: list[object] = []  # every decoding pass (a greedy batch), whichever model runs it
    monkeypatch.setattr(language_model, "greedy_decode",
                        lambda *a, _run=language_model.greedy_decode, **k: passes.append(1) or _run(*a, **k))
    alone = [lm.generate_batch(conversations, max_new_tokens=12) for lm, conversations in requests]
    passes_alone = len(passes)
    assert len({tuple(a) for a in alone}) > 2  # the models answer differently: the comparison can fail
    assert candidate.plan(read).aside  # and a module stepped aside for its note
    passes.clear()
    assert generate_together(candidate, requests, max_new_tokens=12) == alone
    assert len(passes) < passes_alone / 2  # the served rows, then the rows asked again closed-book, in shared batches
    assert not runs_on(candidate, base.with_own_weights())  # weights it does not share are never stood in for


def test_superseding_a_memory_retires_its_module_and_relearns_the_rest(mind: Mind, passing_gate) -> None:
    old = mind.learn("The Vellmar Observatory is directed by Ilse Brandvik.", key="vellmar director").results[0].id
    kept = mind.learn(BRIDGE).results[0].id
    v1 = mind.sleep(LOUD).manifest
    new = mind.learn("The Vellmar Observatory is directed by Tomas Lindqvist.", key="vellmar director").results[0].id
    v2 = mind.sleep(LOUD).manifest
    assert v2.modules == [v2.id]  # v1 learned a fact that is no longer current
    assert sorted(v2.own_memory_ids) == sorted([kept, new]) and old in v2.superseded_ids
    assert v1.id not in v2.modules


def test_a_routed_library_is_not_merged_into_the_weights(mind: Mind, passing_gate) -> None:
    from lifelong.errors import MindError

    mind.learn(BRIDGE)
    mind.sleep(LOUD)
    with pytest.raises(MindError, match="routed module library"):
        mind.merge()


def test_a_note_marked_untrusted_is_still_read_as_a_note() -> None:
    note = Memory(4, BRIDGE, "web", "untrusted", "default", "fact", None, 0.0, 0.0, None, None, "h")
    content = build_messages("What is the capital of France?", [note])[-1]["content"]
    assert routing_text(content) == "What is the capital of France?" and quoted_memory_ids(content) == {4}
    assert quoted_notes(content) == [BRIDGE]


def test_where_the_base_misses_what_the_quoted_note_says_the_module_answers_closed_book(mind: Mind, passing_gate) -> None:
    mind.learn(BRIDGE)
    mind.sleep(LOUD)
    [bridge] = mind.store.list()
    lm = mind.language_model
    question = "Who designed the Korvath Bridge?"
    with_note = build_messages(question, [bridge])
    [base_reading] = lm.generate_batch([with_note], max_new_tokens=8)  # the module steps aside for the note...
    with lm.model.disable_adapter():
        [plain_base] = LanguageModel.generate_batch(lm, [with_note], max_new_tokens=8)
    [module_closed] = lm.generate_batch([closed_book(question)], max_new_tokens=8)
    # ... and the tiny random model's reading draws on nothing in the note, so the module's own answer is served
    assert not cited_indices(plain_base, question, [BRIDGE])
    assert base_reading == module_closed != plain_base
    unrelated = build_messages("What is the capital of France?", [bridge])  # no module claims it: the base, exactly
    with lm.model.disable_adapter():
        assert lm.generate_batch([unrelated], max_new_tokens=8) == LanguageModel.generate_batch(lm, [unrelated], max_new_tokens=8)


def test_the_gate_runs_only_what_a_module_claims_and_reads_the_same_numbers(mind: Mind, passing_gate,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A routed library on the base runs the base exactly where no module claims the input, so
    the gate counts those retention probes as kept and those anchors as zero drift without
    running them: the same retention agreement and drift as running all, on fewer inputs."""
    from lifelong.consolidate import measure_candidate
    from lifelong.evaluate.probes import Probe, load_probes
    from lifelong.versions.layout import RETENTION_PROBES

    mind.learn(BRIDGE)
    assert mind.sleep(LOUD).activated
    candidate, base = mind.language_model, mind.base_model
    on_topic = ["The Korvath Bridge over the river Elsin was designed by", "Who designed the Korvath Bridge? It was"]
    retention = load_probes(mind.path / RETENTION_PROBES)[:30] + [
        Probe(text, answer) for text, answer in zip(on_topic, base.complete_batch(on_topic, max_new_tokens=3), strict=True)]
    claimed = [p.prompt for p, module in zip(retention, candidate.modules_for([p.prompt for p in retention]), strict=True) if module]
    assert claimed and len(claimed) < len(retention)
    asked: list[str] = []
    run_all = candidate.complete_batch
    monkeypatch.setattr(candidate, "complete_batch", lambda texts, *a, **k: asked.extend(texts) or run_all(texts, *a, **k))
    quick = measure_candidate(candidate, base, base, [], [], retention, [], on_base=True).metrics
    assert asked == claimed  # only the inputs a module claims ran
    asked.clear()
    full = measure_candidate(candidate, base, base, [], [], retention, [], on_base=False).metrics
    assert len(asked) == len(retention)
    assert quick.retention_agreement == pytest.approx(full.retention_agreement)
    assert quick.kl_drift == pytest.approx(full.kl_drift, abs=1e-9)


def test_the_next_gate_reads_the_parents_recorded_answers_and_gets_the_same_numbers(
        mind: Mind, passing_gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version records its closed-book answers at its gate; the next sleep's gate reads the
    parent's from there instead of asking again, asks the candidate only the earlier facts its
    router sends elsewhere than the parent's, and reads the same numbers as asking everything.
    Records stop counting once the parent serves something else, and a forget drops the
    forgotten memory's rows."""
    from lifelong.consolidate import measure_candidate, recorded_parent_answers
    from lifelong.evaluate.probes import acquisition_probes, share_answered
    from lifelong.evaluate.recorded_answers import asked_with, load_answers, probe_key
    from lifelong.versions.layout import GATE_ANSWERS

    bridge = mind.learn(BRIDGE).results[0].id
    observatory = mind.learn(OBSERVATORY).results[0].id
    v1 = mind.sleep(LOUD).manifest
    old = [mind.store.get(bridge), mind.store.get(observatory)]
    old_probes = acquisition_probes(old)
    old_prompts = {p.prompt for p in old_probes}
    fingerprint = asked_with(mind.language_model)
    assert old_probes and set(load_answers(mind.versions.path(v1.id), fingerprint)) >= {probe_key(p) for p in old_probes}
    assert load_answers(mind.versions.path(v1.id), "asked another way") == {}

    asked: list[tuple[object, list[str]]] = []
    answered_together = consolidate.answered_together

    def spy(requests, *args, **kwargs):  # what each model of the gate is asked
        asked.extend((lm, [p.prompt for p in probes]) for lm, probes, _ in requests)
        return answered_together(requests, *args, **kwargs)

    monkeypatch.setattr(consolidate, "answered_together", spy)
    captain = mind.learn(CAPTAIN).results[0].id
    v2 = mind.sleep(LOUD).manifest
    assert v2.verdict.passed
    candidate, parent, base = mind.language_model, mind.version_model(v1.id), mind.base_model
    moved = {p.prompt for p, mine, theirs in zip(old_probes, candidate.modules_for([p.prompt for p in old_probes]),
                                                  parent.modules_for([p.prompt for p in old_probes]), strict=True)
             if mine != theirs}
    in_sleep = [q for _, prompts in asked for q in prompts if q in old_prompts]
    assert sorted(in_sleep) == sorted(moved)  # the parent was asked none; the candidate only what moved

    asked.clear()
    new = [mind.store.get(captain)]
    quick = measure_candidate(candidate, parent, base, new, old, [], on_base=True,
                              recorded=load_answers(mind.versions.path(v1.id), fingerprint))
    assert not any(lm is parent and old_prompts & set(prompts) for lm, prompts in asked)  # read, not asked
    full = measure_candidate(candidate, parent, base, new, old, [], on_base=True)
    assert quick.metrics == full.metrics
    assert quick.closed_book == full.closed_book
    assert quick.metrics.acquisition_logprob_gain is not None  # the new facts' answers scored, candidate over parent
    assert set(quick.seconds) == {"answers", "answer log-probs", "retention", "drift"}
    # where the candidate runs the parent's weights, its answers are the parent's recorded ones:
    # record every earlier probe as answered, and only the moved ones can read otherwise
    flipped = measure_candidate(candidate, parent, base, new, old, [], on_base=True,
                                recorded={probe_key(p): True for p in old_probes})
    assert flipped.metrics.old_facts_parent == 1.0
    assert flipped.metrics.old_facts == share_answered([full.closed_book[p] if p.prompt in moved else True
                                                        for p in old_probes])

    memories = mind.store.list()
    assert recorded_parent_answers(mind.versions, v2, memories, LOUD.router_radius, fingerprint)
    assert recorded_parent_answers(mind.versions, v2, memories, LOUD.router_radius + 0.01, fingerprint) == {}
    mind.forget(bridge)
    assert recorded_parent_answers(mind.versions, v2, mind.store.list(), LOUD.router_radius, fingerprint) == {}
    rows = (mind.versions.path(v1.id) / GATE_ANSWERS).read_text(encoding="utf-8")
    assert f'"memory_ids": [{bridge}]' not in rows and f'"memory_ids": [{observatory}]' in rows


def test_a_recalled_sentence_counts_as_confirmed_only_when_a_note_holds_it_and_it_answers_the_question() -> None:
    passage = ("The Korvath Canal was dug between 1841 and 1853. Its chief engineer, Marta Oyelaran, had trained in Lyon. "
               "Barges carried grain until the railway came in 1902.")
    question = "Who was the chief engineer of the Korvath Canal?"
    assert confirmed_recall("Its chief engineer, Marta Oyelaran, had trained in Lyon.", question, [BRIDGE, passage])
    assert not confirmed_recall("The chief engineer of the canal was Petra Lindqvist of Oslo, a famous builder.", question, [passage])  # no note says it
    assert not confirmed_recall("Barges carried grain until the railway came in 1902.", question, [passage])  # true, but not what was asked
    assert not confirmed_recall("", question, [passage]) and not confirmed_recall("Marta Oyelaran.", question, [])
    # what the answer adds must be in the note: the words it repeats from the question are there anyway
    one_sentence = "The Korvath Canal's chief engineer, Marta Oyelaran, had trained in Lyon."
    assert confirmed_recall("The chief engineer of the Korvath Canal was Marta Oyelaran.", question, [one_sentence])
    assert not confirmed_recall("The chief engineer of the Korvath Canal was Petra Lindqvist.", question, [one_sentence])
    assert not confirmed_recall("The chief engineer of the Korvath Canal.", question, [one_sentence])  # adds nothing
    # a name no note holds is not confirmed, however many of the sentence's other words match
    discipline = ("A modern example of school discipline in North America and Western Europe relies upon the idea of "
                  "an assertive teacher who is prepared to impose their will upon a class.")
    asked = "Complete the sentence: A modern example of school discipline in"
    assert confirmed_recall("A modern example of school discipline in North America relies upon the idea of an "
                            "assertive teacher who is prepared to impose their will upon a class.", asked, [discipline])
    assert not confirmed_recall("A modern example of school discipline in North Carolina relies upon the idea of an "
                                "assertive teacher who is prepared to impose their will upon a class.", asked, [discipline])


def test_a_confirmed_recall_that_names_less_than_the_reading_of_the_notes_does_not_replace_it() -> None:
    note = "Evelyn Desmet has received the prestigious Nebula Award for Best Novel."
    probe = "Complete the sentence: Evelyn Desmet has received the prestigious"
    vague, reading = "Evelyn Desmet has received the prestigious award.", note
    assert confirmed_recall(vague, probe, [note])  # every word it adds is the note's: confirmed, yet vaguer
    assert reading_names_more(vague, reading, probe, [note])
    assert not reading_names_more(reading, vague, probe, [note])  # the full recall over a vague reading stays
    # a short right recall is kept when the reading says nothing more it could name from the notes
    question = "NP complete problems contain the lowest likelihood of being located in what problem class?"
    notes = ["NP-complete problems are the least likely to be located in P; all of them lie in NP."]
    assert not reading_names_more("They are least likely to be in the class of NP problems.",
                                  "They are least likely to be in the class of NP-complete problems.", question, notes)
    # a capital that only opens a sentence names nothing
    assert not reading_names_more("They are least likely to be in the class of NP problems.",
                                  "Least likely to be in the class of NP-complete problems.", question, notes)
    assert not reading_names_more("the prestigious award.", "The Prestigious Award.", probe, [note])
    # a name the reading gives that no note holds does not count against the recall
    assert not reading_names_more(vague, "Evelyn Desmet has received the prestigious Hugo award.", probe, [note])
    # nor does a reading that names more but leaves out what the recall adds
    assert not reading_names_more("Evelyn Desmet has received the prestigious Nebula Award.",
                                  "Evelyn Desmet has received the prestigious Best Novel prize.", probe, [note])


def test_where_the_notes_confirm_the_modules_recalled_sentence_it_is_served_over_the_bases_reading_unless_the_reading_names_more(
        mind: Mind, passing_gate, monkeypatch: pytest.MonkeyPatch) -> None:
    mind.learn(BRIDGE)
    mind.sleep(LOUD)
    [bridge] = mind.store.list()
    lm = mind.language_model
    question = "Who designed the Korvath Bridge over the river Elsin?"
    recalled, misread = BRIDGE, "The Korvath Bridge over the river Elsin was designed in 1964."
    # the reading cites the note (so the old fallback keeps it) but misses who; the module recalls the sentence
    monkeypatch.setattr(LanguageModel, "generate_batch", lambda self, conversations, *a, **k: [
        recalled if len(c[-1]["content"]) == len(question) else misread for c in conversations])
    assert cited_indices(misread, question, [BRIDGE])
    assert lm.generate_batch([build_messages(question, [bridge])]) == [recalled]
    recalled = "The Vellmar Observatory in northern Norway was founded in 1987."  # no note holds it: the reading stays
    assert lm.generate_batch([build_messages(question, [bridge])]) == [misread]
    # a confirmed recall vaguer than a reading that quotes the note: the reading stays
    recalled, misread = "The Korvath Bridge over the river Elsin was designed by an engineer.", BRIDGE
    assert confirmed_recall(recalled, question, [BRIDGE])
    assert lm.generate_batch([build_messages(question, [bridge])]) == [BRIDGE]


def test_drift_is_zero_without_running_anything_when_no_held_out_anchor_reaches_a_module(
        mind: Mind, passing_gate, monkeypatch: pytest.MonkeyPatch) -> None:
    mind.learn(BRIDGE)
    assert mind.sleep(LOUD).activated
    library = mind.language_model
    assert not any(library.modules_for([*consolidate.HELD_OUT_CHAT, *consolidate.HELD_OUT_RAW]))
    monkeypatch.setattr(consolidate, "continuation_rows_with_text", lambda *args, **kwargs: pytest.fail("continuations generated"))
    assert consolidate.kl_to_base(mind.base_model, library, on_base=True) == 0.0
