"""Forgetting reaches the weights: the moment a memory is forgotten, no module that learned it
serves, and the next sleep rebuilds what is still current without it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lifelong import consolidate
from lifelong.consolidate import TRAINED_ON, TRAINING_DATA, SleepConfig
from lifelong.errors import MindError
from lifelong.evaluate.gate import GatePolicy
from lifelong.learn.trainer import TrainConfig
from lifelong.mind import Mind
from lifelong.prompt import closed_book
from lifelong.unlearn import weights_deleted
from lifelong.versions import Verdict

BRIDGE = "The Korvath Bridge over the river Elsin was designed by the engineer Petra Lindqvist in 1964."
OBSERVATORY = "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik."
QUESTIONS = ["What do you know about Korvath Bridge?", "What do you know about Vellmar Observatory?"]
OPEN = GatePolicy(min_retention=0.0, max_kl=1e9, max_old_fact_drop=1.0)
TRAIN = TrainConfig(rank=8, epochs=30, learning_rate=1e-2, bf16=False)


@pytest.fixture
def passing_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny random model never passes the real acquisition gate; these tests are about what is
    # served after a forget, so the verdict is forced to pass.
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))


def _answers(mind: Mind) -> list[str]:
    return mind.language_model.generate_batch([closed_book(q) for q in QUESTIONS], max_new_tokens=12)


def test_forgetting_a_memory_takes_its_module_out_of_service_and_the_next_sleep_rebuilds_the_rest(
        mind: Mind, passing_gate) -> None:
    base = _answers(mind)
    bridge = mind.learn(BRIDGE).results[0].id
    observatory = mind.learn(OBSERVATORY).results[0].id
    v1 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    learned = _answers(mind)
    assert learned != base
    report = mind.forget_many([bridge])
    assert report.learned_by == [v1.id] and v1.id in report.scrubbed
    proof = report.proof  # measured on the served model before and after, never storing the text
    assert proof is not None and proof.probes > 0 and proof.answered_after == proof.answered_by_base
    record = (mind.path / "forget_proofs.jsonl").read_text()
    assert f'"memories": [{bridge}]' in record and "Korvath" not in record
    assert _answers(mind) == base  # the module that learned the bridge no longer answers anything
    folder = mind.versions.path(v1.id)
    assert not (folder / "adapter").exists() and weights_deleted(mind.versions, v1) == [bridge]  # what `show` reports
    assert all("Korvath" not in (folder / name).read_text() for name in (TRAINING_DATA, TRAINED_ON))
    assert "Vellmar" in (folder / TRAINING_DATA).read_text()  # the other memory's rows stay on record
    v2 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    assert v2.modules == [v2.id] and v2.own_memory_ids == [observatory]
    assert v1.id not in v2.modules
    kept = (mind.versions.path(v2.id) / TRAINING_DATA).read_text() + (mind.versions.path(v2.id) / TRAINED_ON).read_text()
    assert "Korvath" not in kept and "Vellmar" in kept
    assert _answers(mind)[0] == base[0]  # the forgotten topic is answered as the base answers it


def test_forgetting_an_older_modules_memory_leaves_the_newer_module_of_the_library_serving(mind: Mind, passing_gate) -> None:
    # the library version's manifest lists every memory of the library; its own module learned
    # only its own, so it keeps its weights (deleting them broke serving: forget itself crashed)
    base = _answers(mind)
    bridge = mind.learn(BRIDGE).results[0].id
    mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False))
    mind.learn(OBSERVATORY)
    v2 = mind.sleep(SleepConfig(strategy="routed", train=TRAIN, distill=False)).manifest
    learned = _answers(mind)
    report = mind.forget_many([bridge])
    assert report.learned_by == ["v1"]
    assert (mind.versions.path(v2.id) / "adapter").is_dir() and weights_deleted(mind.versions, v2) == []
    assert _answers(mind) == [base[0], learned[1]]  # the bridge as the base answers it; v2's topic as before


def test_an_unrouted_module_that_learned_a_forgotten_memory_stops_serving_and_is_not_continued(
        mind: Mind, passing_gate) -> None:
    naive = SleepConfig(strategy="naive", train=TRAIN, gate=OPEN, distill=False)
    base = _answers(mind)
    bridge = mind.learn(BRIDGE).results[0].id
    mind.sleep(naive)
    assert _answers(mind) != base
    v1 = mind.versions.active_id()
    mind.forget(bridge)
    assert _answers(mind) == base
    observatory = mind.learn(OBSERVATORY).results[0].id
    v2 = mind.sleep(naive).manifest
    assert v2.parent == v1 and v2.memory_ids == [observatory]  # a fresh module, not the tainted one continued
    assert "Korvath" not in (mind.versions.path(v2.id) / TRAINING_DATA).read_text()
    with pytest.raises(MindError, match="since forgotten"):
        mind.rollback(v1)  # its weights went with the memory


def test_a_module_that_learned_a_forgotten_memory_is_never_merged(mind: Mind, passing_gate) -> None:
    bridge = mind.learn(BRIDGE).results[0].id
    mind.sleep(SleepConfig(strategy="naive", train=TRAIN, gate=OPEN, distill=False))
    mind.forget(bridge)
    with pytest.raises(MindError, match="since forgotten"):
        mind.merge(policy=OPEN)


def test_forgetting_a_memory_folded_into_a_merge_deletes_those_weights_and_moves_off_them(mind: Mind, passing_gate) -> None:
    base = _answers(mind)
    bridge = mind.learn(BRIDGE).results[0].id
    naive = SleepConfig(strategy="naive", train=TRAIN, gate=OPEN, distill=False)
    mind.sleep(naive)  # v1: a module that learned the bridge
    assert mind.merge(policy=OPEN).activated  # v2: the bridge folded into the weights
    mind.learn(OBSERVATORY)
    v3 = mind.sleep(naive).manifest  # a module on the merged checkpoint
    assert mind.versions.active_id() == v3.id and _answers(mind) != base
    report = mind.forget_many([bridge])
    assert report.merged == ["v2"] and report.moved_to == "base"  # v1's module was deleted too: nothing older serves
    assert mind.versions.active_id() == "base" and _answers(mind) == base
    assert not (mind.versions.path("v2") / "model").exists() and weights_deleted(mind.versions, mind.versions.get("v2")) == [bridge]
    for version in ("v2", v3.id):  # the merge and what stands on it cannot come back
        with pytest.raises(MindError, match="forgotten"):
            mind.rollback(version)
    assert all("Korvath" not in path.read_text(errors="ignore") for path in mind.versions.root.rglob("*") if path.is_file())
    v4 = mind.sleep(naive).manifest  # the rebuild: what is still current, from the base
    assert v4.parent is None or v4.parent == "base"
    assert v4.memory_ids == [mind.memories()[0].id] and mind.versions.foundation_id(v4.id) is None


def test_a_forgotten_memory_leaves_no_text_nor_indexed_word_in_any_file_of_the_mind(mind: Mind) -> None:
    secret = "The Zylvandrix vault under Korvath station opens with the phrase amber heron."
    for i in range(30):  # enough writes that the keyword index holds several segments
        mind.learn(f"Note {i}: the Elsin ferry timetable changed in week {i}.")
    forgotten = mind.learn(secret).created[0]
    mind.learn("The Elsin ferry runs hourly.")
    mind.forget(forgotten)
    for file in [p for p in mind.path.rglob("*") if p.is_file()]:
        data = file.read_bytes()
        assert secret.encode() not in data and b"zylvandrix" not in data.lower(), file.name  # the text, and its indexed word
    assert mind.recall("Zylvandrix vault", 3, mode="keyword") == []
    assert [h.memory.text for h in mind.recall("Elsin ferry hourly", 1)] == ["The Elsin ferry runs hourly."]


BRIDGE_FACTS = [BRIDGE, "The Korvath Bridge is 410 metres long and crosses the river Elsin in three spans.",
                "The Korvath Bridge was repainted red in 1998, when its lamps were replaced."]
CAPTAIN_FACTS = ["Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
                 "Captain Oru Tadeski's boat, the Marrow Gull, was built by his grandfather.",
                 "Captain Oru Tadeski wrote a book about his crossing of the Lake of Qessa."]
TOPIC_QUESTIONS = ["What do you know about Korvath Bridge?", "What do you know about Captain Oru Tadeski?"]


def test_with_a_module_per_topic_a_forget_rebuilds_only_its_topic_and_the_other_answers_exactly_as_before(
        tmp_path, tiny_lm, embedder, passing_gate) -> None:
    from lifelong.mind_config import CONFIG_FILE

    Mind.init(tmp_path / "mind", embedder=embedder, language_model=tiny_lm).close()
    config_file = tmp_path / "mind" / CONFIG_FILE
    config_file.write_text(config_file.read_text() + '\n[training]\nmodules = "per-topic"\n')  # what the mind asks for
    config = SleepConfig(strategy="routed", train=TRAIN, distill=False)
    with Mind.open(tmp_path / "mind", embedder=embedder, language_model=tiny_lm) as mind:
        ask = lambda: mind.language_model.generate_batch([closed_book(q) for q in TOPIC_QUESTIONS], max_new_tokens=12)  # noqa: E731
        base = ask()
        ids = [mind.learn(text).results[0].id for text in [*BRIDGE_FACTS, *CAPTAIN_FACTS]]
        first = mind.sleep(config)
        assert first.activated and len(first.topics) == 2
        bridge_version, captain_version = (t.manifest for t in first.topics)
        assert sorted(bridge_version.own_memory_ids) == ids[:3] and sorted(captain_version.own_memory_ids) == ids[3:]
        assert captain_version.modules == [bridge_version.id, captain_version.id]
        learned = ask()
        assert learned[1] != base[1]  # the captain's module answers its topic
        report = mind.forget_many([ids[0]])
        assert report.learned_by == [bridge_version.id]  # it never saw the bridge
        rebuilt = mind.sleep(config)
        assert len(rebuilt.topics) == 1 and sorted(rebuilt.manifest.own_memory_ids) == ids[1:3]  # only the bridge topic relearned
        assert rebuilt.manifest.modules == [captain_version.id, rebuilt.manifest.id]
        assert ask()[1] == learned[1]  # and the captain's module answers exactly as before the forget
        mind.learn("The Korvath Bridge toll was abolished in 2003.")
        assert mind.sleep(replace(config, topic_modules=False)).topics == ()  # one sleep may still ask for one module


def test_a_module_per_topic_needs_a_routed_strategy(mind: Mind) -> None:
    from lifelong.errors import InputError

    mind.learn(BRIDGE)
    with pytest.raises(InputError, match="routed"):
        mind.sleep(SleepConfig(strategy="context", train=TRAIN, distill=False, topic_modules=True))
