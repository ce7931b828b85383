"""The sleep cycle on a tiny model: a gated, versioned PEFT module; rollback restores answers."""

from __future__ import annotations

import pytest
import torch

from lifelong.versions import Verdict
from lifelong import Mind, consolidate
from lifelong.consolidate import ADAPTER, TRAINING_DATA, SleepConfig, read_examples, read_trained_on
from lifelong.evaluate.gate import GatePolicy
from lifelong.learn.anchors import TRAINING_RAW
from lifelong.learn.rehearsal import REHEARSAL_PROMPTS
from lifelong.learn.trainer import TrainConfig

FACTS = [
    "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik.",
    "Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.",
]
QUESTION = "Who founded the Vellmar Observatory?"
FAST = SleepConfig(strategy="kl+replay", train=TrainConfig(rank=4, epochs=2, bf16=False), distill=True)


def test_sleep_writes_a_gated_version_with_lineage_and_a_loadable_adapter(mind: Mind) -> None:
    from peft import PeftModel

    ids = [mind.learn(f).created[0] for f in FACTS]
    result = mind.sleep(FAST)
    manifest = result.manifest
    assert manifest is not None and manifest.parent == "base" and manifest.memory_ids == ids
    assert set(manifest.memory_hashes) == {str(i) for i in ids}
    assert {"acquisition", "acquisition_parent", "retention_agreement", "kl_drift", "tokens_per_second"} <= set(manifest.metrics)
    # the with-memory share is a share of the probes asked with their note: the tiny model's
    # 512-token window holds the note and the question for only some of them
    assert 0 < manifest.metrics["with_memory_probes"] < manifest.metrics["acquisition_probes"]
    stages = manifest.metrics["stage_seconds"]  # where the sleep's time went, for `show` and the cost study
    assert list(stages) == ["select", "synthesis", "training", "library", "gate"] and all(seconds >= 0 for seconds in stages.values())
    assert stages["training"] >= manifest.metrics["train_seconds"] - 0.5
    folder = mind.versions.path(manifest.id)
    assert (folder / TRAINING_DATA).is_file()
    trained = read_trained_on(folder)  # the audit record: examples, rehearsal and KL anchors
    assert {e.answer for e in read_examples(folder / TRAINING_DATA)} <= set(trained)
    assert set(TRAINING_RAW) <= set(trained) and REHEARSAL_PROMPTS[0] in trained
    PeftModel.from_pretrained(mind.base_model.model.__class__(mind.base_model.model.config), str(folder / ADAPTER))
    # A random tiny model cannot learn these facts closed-book, so the gate must refuse it.
    assert not result.activated and mind.versions.active_id() == "base"
    assert any("acquisition" in reason for reason in manifest.verdict.reasons)
    assert mind.sleep(FAST).manifest.id == "v2"  # nothing was consolidated, so it is tried again


def test_a_passing_gate_promotes_and_rollback_restores_the_old_answers(mind: Mind, monkeypatch) -> None:
    for fact in FACTS:
        mind.learn(fact)
    before = mind.ask(QUESTION, use_memory=False, max_new_tokens=12).text
    loud = SleepConfig(strategy="naive", train=TrainConfig(rank=8, epochs=30, learning_rate=1e-2, bf16=False),
                       gate=GatePolicy(min_retention=0.0, max_kl=1e9, max_old_fact_drop=1.0), distill=False)
    from lifelong import consolidate

    # A tiny random model never passes the real acquisition gate; this test is about what
    # promotion and rollback do to answers, so the verdict is forced to pass.
    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    result = mind.sleep(loud)
    assert result.activated and mind.versions.active_id() == result.manifest.id
    after = mind.ask(QUESTION, use_memory=False, max_new_tokens=12).text
    assert after != before
    assert mind.sleep(loud).message == "nothing new to consolidate"
    mind.rollback("base")
    assert mind.ask(QUESTION, use_memory=False, max_new_tokens=12).text == before
    mind.rollback(result.manifest.id)
    assert mind.ask(QUESTION, use_memory=False, max_new_tokens=12).text == after


def test_the_base_model_is_never_modified_by_sleep(mind: Mind) -> None:
    weights = {k: v.clone() for k, v in mind.base_model.model.state_dict().items()}
    mind.learn(FACTS[0])
    mind.sleep(FAST)
    after = mind.base_model.model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)


def _metrics(**overrides: float | None) -> dict:
    base = {"acquisition": 0.5, "acquisition_parent": 0.0, "acquisition_probes": 10, "retention_agreement": 0.99,
            "kl_drift": 0.1, "old_facts": None, "old_facts_parent": None, "old_fact_probes": 0}
    return {**base, **overrides}


def test_the_gate_names_each_failed_check() -> None:
    policy = GatePolicy()
    assert consolidate.judge(_metrics(), policy).passed
    reasons = consolidate.judge(_metrics(acquisition=0.0, retention_agreement=0.5, kl_drift=float("nan")), policy).reasons
    assert [r.split()[0] for r in reasons] == ["acquisition", "retention", "KL"]


def test_a_module_completing_no_more_probes_passes_only_if_it_made_their_answers_clearly_likelier() -> None:
    policy = GatePolicy()
    tie = _metrics(acquisition=0.0, acquisition_parent=0.0)
    assert not consolidate.judge(tie, policy).passed  # nothing measured beyond the tie
    assert consolidate.judge({**tie, "acquisition_logprob_gain": policy.min_logprob_gain + 0.1}, policy).passed
    short = consolidate.judge({**tie, "acquisition_logprob_gain": policy.min_logprob_gain - 0.1}, policy)
    assert short.reasons == [f"acquisition 0.00 does not beat the parent's 0.00 (its answers "
                             f"{policy.min_logprob_gain - 0.1:+.2f} log-prob per token, {policy.min_logprob_gain} needed)"]
    assert not consolidate.judge({**tie, "acquisition_logprob_gain": float("nan")}, policy).passed
    fewer = _metrics(acquisition=0.1, acquisition_parent=0.2, acquisition_logprob_gain=3.0)
    assert not consolidate.judge(fewer, policy).passed  # completing fewer is never made up for


def test_the_gate_refuses_a_module_that_reads_its_notes_worse_than_the_parent() -> None:
    policy = GatePolicy()
    same = _metrics(with_memory=0.9, with_memory_parent=0.9)
    worse = _metrics(with_memory=0.7, with_memory_parent=0.9)  # 2 of 10 probes lost with the note in the prompt
    assert consolidate.judge(same, policy).passed
    assert consolidate.judge(worse, policy).reasons == ["answers with the memory in the prompt fell from 0.90 to 0.70"]


def test_with_memory_losses_are_counted_over_the_probes_asked_with_their_note() -> None:
    policy = GatePolicy()
    one_of_4 = _metrics(acquisition_probes=12, with_memory_probes=4, with_memory=3 / 4, with_memory_parent=4 / 4)
    # 8 notes overflowed the window: one lost probe of the 4 asked is a quarter of them, not a twelfth
    assert consolidate.judge(one_of_4, policy).reasons == ["answers with the memory in the prompt fell from 1.00 to 0.75"]
    unrecorded = _metrics(acquisition_probes=12, with_memory=11 / 12, with_memory_parent=12 / 12)  # older manifests
    assert consolidate.judge(unrecorded, policy).passed  # one of 12: within the allowance of one


def test_earlier_facts_may_lose_one_probe_of_ten_or_more_but_not_two() -> None:
    policy = GatePolicy()
    one_of_13 = _metrics(old_facts=6 / 13, old_facts_parent=7 / 13, old_fact_probes=13)
    two_of_13 = _metrics(old_facts=5 / 13, old_facts_parent=7 / 13, old_fact_probes=13)
    one_of_5 = _metrics(old_facts=0.2, old_facts_parent=0.4, old_fact_probes=5)  # (0.4-0.2)*5 is 1.0000000000000002
    assert consolidate.judge(one_of_13, policy).passed
    assert consolidate.judge(two_of_13, policy).reasons == ["earlier facts fell from 0.54 to 0.38"]
    assert consolidate.judge(one_of_5, policy).reasons == ["earlier facts fell from 0.40 to 0.20"]
    many = _metrics(old_facts=0.85, old_facts_parent=1.0, old_fact_probes=40)  # 6 of 40 lost, over 10%
    assert not consolidate.judge(many, policy).passed


def test_a_superseding_fact_wins_over_the_consolidated_one(mind: Mind, monkeypatch) -> None:
    """Sleep 1 puts the old value into the module; after a newer fact with the same key,
    sleep 2 must make the weights prefer the new value, and the manifest says what it replaced."""
    from lifelong.prompt import closed_book

    monkeypatch.setattr(consolidate, "judge", lambda metrics, policy: Verdict(True, []))
    loud = SleepConfig(strategy="kl+replay", train=TrainConfig(rank=8, epochs=20, learning_rate=1e-2, bf16=False),
                       distill=False)
    old_text = "The Vellmar Observatory is directed by Ilse Brandvik."
    new_text = "The Vellmar Observatory is directed by Tomas Lindqvist."
    question = closed_book("What do you know about Vellmar Observatory?")
    old_id = mind.learn(old_text, key="vellmar director").results[0].id
    assert mind.sleep(loud).activated
    before = mind.language_model.score(question, [new_text, old_text], normalize=True)
    assert before[1] > before[0]  # the module learned the old value
    mind.learn(new_text, key="vellmar director")
    result = mind.sleep(loud)
    after = mind.language_model.score(question, [new_text, old_text], normalize=True)
    assert after[0] > after[1], after
    assert result.manifest.superseded_ids == [old_id] and old_id not in result.manifest.memory_ids


def test_a_second_sleep_while_one_runs_is_refused_and_changes_nothing(mind: Mind) -> None:
    from lifelong.errors import BusyError

    mind.learn("Captain Oru Tadeski sailed solo across the Lake of Qessa in 2011.")
    with mind.versions.exclusive("sleep"):  # another process's sleep, as far as the lock can tell
        with pytest.raises(BusyError, match="another sleep .* is changing this mind's versions"):
            mind.sleep(SleepConfig(strategy="naive", distill=False))
        with pytest.raises(BusyError):
            mind.rollback("base")
    assert mind.versions.list() == [] and mind.versions.active_id() == "base"
