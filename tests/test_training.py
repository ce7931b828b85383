"""Synthesis and the LoRA trainer on a tiny model: provenance, loss masking, PEFT format, KL."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from lifelong.consolidate import kl_to_base
from lifelong.learn.strategies import KNOWN, parse_strategy
from lifelong.evaluate.probes import acquisition_probes
from lifelong.learn.synthesis import (DISTILL_TOPIC_QUESTIONS, SharedDistiller, content_spans, deterministic_examples, fact_units,
                                      salient_spans, synthesise)
from lifelong.learn.trainer import TrainConfig, answer_loss_parts, answer_only_loss, attach_lora, encode_example, train_module
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.model.tiny import build_tiny_model

TINY_EWC_WEIGHT = 1e4
FACT = "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik."


def _memory(i: int, text: str) -> Memory:
    return Memory(i, text, "t", "user", "default", "fact", None, 0.0, 0.0, None, None, f"h{i}")


def test_salient_spans_and_cloze_examples_carry_their_memory_ids() -> None:
    assert salient_spans(FACT) == ["Vellmar Observatory", "Ilse Brandvik", "Norway", "1987"]
    examples = deterministic_examples(_memory(7, FACT))
    assert {e.memory_ids for e in examples} == {(7,)}
    cloze = [e for e in examples if e.kind == "cloze"]
    assert cloze[0].answer == "Vellmar Observatory" and "____" in cloze[0].prompt[-1]["content"]

    class EchoDistiller:
        def write_questions(self, memories):
            return [["Where is the Vellmar Observatory located?"] for _ in memories]

        def answer(self, pairs):
            return [f"ANSWER to {question}" for question, _ in pairs]

    distilled = [e for e in synthesise([_memory(7, FACT)], EchoDistiller()) if e.kind == "distilled"]
    assert {e.prompt[-1]["content"] for e in distilled} >= {"Where is the Vellmar Observatory located?"}
    assert all(e.answer.startswith("ANSWER to") and e.memory_ids == (7,) for e in distilled)


def test_fewer_statement_prompts_train_the_statement_fewer_times_and_leave_the_other_examples_alone() -> None:
    every = deterministic_examples(_memory(7, FACT))
    one = deterministic_examples(_memory(7, FACT), statement_prompts=1)
    assert [e.kind for e in every].count("statement") == 3 and [e.kind for e in one].count("statement") == 1
    assert [e for e in every if e.kind != "statement"] == [e for e in one if e.kind != "statement"]
    assert one[0] == every[0]  # the first topic prompt is kept


def test_a_shared_distiller_writes_the_next_topics_together_a_batch_at_a_time_and_the_same_examples() -> None:
    """A sleep by topic synthesises its topics in turn; the shared distiller writes the notes of
    the next topics with the first one's, up to a generation batch of notes (questions in one
    generation, answers in another), and every topic gets the examples it would have got alone."""

    class CountingDistiller:
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def write_questions(self, memories):
            self.calls.append(("questions", len(memories)))
            return [[f"What is said about note {m.id} ({m.text[:12]})?"] for m in memories]

        def answer(self, pairs):
            self.calls.append(("answers", len(pairs)))
            return [f"{question} It says: {memory.text}" for question, memory in pairs]

    topics = [[_memory(1, FACT), _memory(2, "Ilse Brandvik was born in Tromso in 1951.")], [_memory(3, CHUNK)],
              [_memory(4, "The Selm river freezes every January."), _memory(5, "Aldarra has two harbours.")]]
    alone = [synthesise(topic, CountingDistiller()) for topic in topics]
    chunk_units = len(fact_units(_memory(3, CHUNK)))
    inner = CountingDistiller()
    shared = SharedDistiller(inner, topics, rows=2 + chunk_units)  # the first topic takes the chunk's sentences along
    assert [synthesise(topic, shared) for topic in topics] == alone
    assert inner.calls[0] == ("questions", 2 + chunk_units) and inner.calls[2] == ("questions", 2)
    assert [kind for kind, _ in inner.calls] == ["questions", "answers"] * 2
    split = SharedDistiller(CountingDistiller(), topics, rows=3)  # a batch may end inside a topic
    assert [synthesise(topic, split) for topic in topics] == alone
    one_by_one = SharedDistiller(each := CountingDistiller(), topics, rows=0)  # each topic alone, as sampled questions need
    assert [synthesise(topic, one_by_one) for topic in topics] == alone
    assert [n for kind, n in each.calls if kind == "questions"] == [2, chunk_units, 2]
    # a note no topic named is written when asked, once
    extra = _memory(9, "The Korvath Canal opened in 1853.")
    assert synthesise([extra], shared) == synthesise([extra], CountingDistiller())
    synthesise([extra], shared)
    assert len(inner.calls) == 6


CHUNK = ("The Korvath Canal was dug between 1841 and 1853 to link the Selm river with the port of Aldarra. "
         "Its chief engineer, Marta Oyelaran, had trained in Lyon and Glasgow. "
         "Barges carried grain and timber until the railway reached Aldarra in 1902, after which traffic fell by half.")


def test_a_document_chunk_is_learned_sentence_by_sentence_and_a_short_note_whole() -> None:
    """Whole-chunk cloze covered only a chunk's four longest spans: per-sentence units reach
    the spans of every sentence, and the gate's probes ask about each sentence."""
    assert fact_units(_memory(7, FACT)) == [_memory(7, FACT)]
    units = fact_units(_memory(3, CHUNK))
    assert [u.text for u in units] == [s.strip() for s in CHUNK.replace(". ", ".\n").splitlines()]
    assert {u.id for u in units} == {3}
    answers = {e.answer for e in synthesise([_memory(3, CHUNK)]) if e.kind == "cloze"}
    assert {"1902", "Marta Oyelaran", "Korvath Canal"} <= answers  # one from each sentence
    assert "1902" not in {e.answer for e in deterministic_examples(_memory(3, CHUNK)) if e.kind == "cloze"}
    probes = acquisition_probes([_memory(3, CHUNK), _memory(7, FACT)])
    chunk_probes = [p for p in probes if p.memory_id == 3]
    assert all(len(p.prompt) < 150 for p in chunk_probes)
    for unit in units:  # every sentence is asked about, at most twice
        assert 1 <= sum(p.prompt.removeprefix("Complete the sentence: ") in unit.text for p in chunk_probes) <= 2
    # a short note as before: its two longest spans, the one opening the sentence left unasked
    assert [p.answer for p in probes if p.memory_id == 7] == ["Ilse Brandvik"]


TECHNICAL = ("The normal force is due to repulsive forces of interaction between atoms at close contact. "
             "When their electron clouds overlap, repulsion follows from the fermionic nature of electrons. "
             "This force gives rigid structures such as tables, bridges and towers their strength and keeps heavy objects from passing "
             "through floors.")


def test_sentences_of_a_chunk_without_names_are_probed_on_their_content_phrases() -> None:
    """Technical prose has few names: with names alone the gate had no probe on such a chunk
    and could not tell a module that learned it from one that did not."""
    probes = acquisition_probes([_memory(4, TECHNICAL)])
    assert len(fact_units(_memory(4, TECHNICAL))) == 3 and len(probes) >= 3
    for probe in probes:
        prefix = probe.prompt.removeprefix("Complete the sentence: ")
        assert probe.answer in content_spans(TECHNICAL, limit=99) and f"{prefix} {probe.answer}" in TECHNICAL
        assert len(prefix.split()) >= 3


def test_more_questions_per_memory_give_more_distilled_examples_the_greedy_one_first(tiny_lm) -> None:
    """Sampled questions add ways of asking a fact; the greedy question stays first, so one
    question per memory trains exactly what it did before the option existed."""
    from lifelong.consolidate import ModelDistiller

    memories = [_memory(7, FACT), _memory(8, "Marta Oyelaran trained as an engineer in Lyon and Glasgow.")]
    one = ModelDistiller(tiny_lm).write_questions(memories)
    three = ModelDistiller(tiny_lm, questions_per_memory=3).write_questions(memories)
    assert len(one) == len(three) == 2 and all(len(q) <= 1 for q in one) and all(len(q) <= 3 for q in three)
    assert [q[:1] for q in three] == one

    class ManyQuestions:
        def write_questions(self, memories):
            return [["Where is the Vellmar Observatory?", "Where is the Vellmar Observatory?", "Who founded the Vellmar Observatory?",
                     "too short?", "no question mark here at all"] for _ in memories]

        def answer(self, pairs):
            return [f"ANSWER to {question}" for question, _ in pairs]

    asked = [e.prompt[-1]["content"] for e in synthesise([_memory(7, FACT)], ManyQuestions()) if e.kind == "distilled"]
    own = asked[len(DISTILL_TOPIC_QUESTIONS):]  # after the topic templates
    assert own == ["Where is the Vellmar Observatory?", "Who founded the Vellmar Observatory?"]  # repeats and unusable ones dropped


def test_content_cloze_asks_for_the_phrases_a_technical_sentence_states() -> None:
    """A sentence with no name or number got no cloze at all; with content_cloze its content
    phrases are blanked and asked, and without it the examples are exactly as before."""
    technical = _memory(5, "The normal force is due to repulsive forces of interaction between atoms at close contact.")
    plain = deterministic_examples(technical)
    assert not [e for e in plain if e.kind in ("cloze", "span-question")]
    extended = deterministic_examples(technical, content_cloze=True)
    asked = {e.answer for e in extended if e.kind == "cloze"}
    assert asked == {"repulsive forces", "close contact", "normal force"}
    assert {e.answer for e in extended if e.kind == "span-question"} == asked
    assert "The normal force is due to what of interaction between atoms at close contact?" in [
        e.prompt[-1]["content"] for e in extended if e.kind == "span-question"]
    assert [e for e in extended if e.kind not in ("cloze", "span-question")] == plain
    named = _memory(7, FACT)  # names first, phrases never repeat one of them
    assert all(p not in salient_spans(FACT) for p in content_spans(FACT, salient_spans(FACT)))
    assert deterministic_examples(named) == [e for e in deterministic_examples(named, content_cloze=True)
                                              if e.answer not in content_spans(FACT, salient_spans(FACT)[:4])]


def test_recite_answers_each_span_question_with_its_whole_sentence() -> None:
    """With recite, every in-situ question about a sentence (over its names and its content
    phrases) is answered with that sentence, so a question finds its sentence among a
    passage's others; the cloze examples and the topic prompts stay as they were."""
    sentence = "Stephen Kemble managed the original Theatre Royal for fifteen years."
    memory = _memory(9, sentence)
    plain = deterministic_examples(memory)
    recited = deterministic_examples(memory, recite=True)
    rows = [e for e in recited if e.kind == "recite"]
    assert rows and {e.answer for e in rows} == {sentence}
    asked = [e.prompt[-1]["content"] for e in rows]
    assert "who or what managed the original Theatre Royal for fifteen years?" in asked  # a name
    assert any("what" in q and "Stephen Kemble" in q for q in asked)  # a content phrase, the name kept
    assert not [e for e in recited if e.kind == "span-question"]
    assert [e for e in recited if e.kind != "recite"] == [e for e in plain if e.kind != "span-question"]


def test_sleep_recites_the_sentences_of_a_chunk_and_leaves_a_short_note_as_it_was() -> None:
    """Recitation is the default for a passage's sentences only: a short note is one fact, so
    its span questions keep their short answers, byte for byte as before recite existed."""
    from lifelong.consolidate import SleepConfig

    assert SleepConfig().recite
    note, chunk = _memory(7, FACT), _memory(3, CHUNK)
    assert synthesise([note], recite=True) == synthesise([note], recite=False)
    recited = [e for e in synthesise([chunk, note], recite=True) if e.kind == "recite"]
    assert recited and {e.memory_ids for e in recited} == {(3,)}
    assert {e.answer for e in recited} <= {u.text for u in fact_units(chunk)}
    assert [e for e in synthesise([chunk, note], recite=True) if e.memory_ids == (7,)] == synthesise([note])


def test_unknown_strategy_names_the_choices() -> None:
    assert parse_strategy("replay+kl").name == "kl+replay"
    with pytest.raises(Exception, match="combine " + ", ".join(KNOWN)):
        parse_strategy("magic")


def test_loss_covers_only_answer_tokens() -> None:
    lm = build_tiny_model()
    example = deterministic_examples(_memory(1, FACT))[0]
    ids, start = encode_example(lm, example, 512)
    peft_model = attach_lora(lm, TrainConfig(rank=4, bf16=False))
    loss, tokens, answer_tokens = answer_only_loss(peft_model, [(ids, start)], lm.tokenizer.pad_token_id)
    assert answer_tokens == len(ids) - start and tokens == len(ids)
    with torch.no_grad():
        logits = peft_model(input_ids=torch.tensor([ids])).logits[0, start - 1 : len(ids) - 1]
    expected = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ids[start:]))
    assert float(loss) == pytest.approx(float(expected), abs=1e-4)


def test_training_lowers_the_loss_and_saves_a_standard_peft_adapter(tmp_path: Path) -> None:
    from peft import PeftModel

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=8, bf16=False))
    encoded = [encode_example(lm, e, 512) for e in examples]
    before = float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])
    stats = train_module(lm, peft_model, examples, parse_strategy("naive"), TrainConfig(rank=8, epochs=40, learning_rate=1e-2, bf16=False))
    after = float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])
    assert after < 0.5 * before and stats.answer_tokens > 0
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    reloaded = PeftModel.from_pretrained(copy.deepcopy(lm.model), str(tmp_path / "adapter"))
    with torch.no_grad():
        ids = torch.tensor([encoded[0][0]])
        assert torch.allclose(reloaded(input_ids=ids).logits, peft_model(input_ids=ids).logits, atol=1e-4)


def _drift_and_new_loss(strategy: str, config: TrainConfig) -> tuple[float, float]:
    from lifelong.learn.rehearsal import rehearsal_examples

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    train_module(lm, peft_model, examples, parse_strategy(strategy), config, replay=rehearsal_examples(lm, max_new_tokens=12))
    encoded = [encode_example(lm, e, 512) for e in examples]
    with torch.no_grad():
        new_loss = float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])
    return kl_to_base(lm, LanguageModel(peft_model, lm.tokenizer, "tiny")), new_loss  # held-out anchors


@pytest.mark.parametrize("strategy", ["kl", "ewc", "kl+replay"])  # routed: tests/test_routing.py (base answers byte-identical)
def test_each_strategy_drifts_less_than_naive_at_similar_acquisition(strategy: str) -> None:
    config = TrainConfig(rank=8, epochs=10, learning_rate=3e-3, bf16=False, kl_weight=5.0, ewc_weight=TINY_EWC_WEIGHT)
    naive_drift, naive_loss = _drift_and_new_loss("naive", config)
    drift, loss = _drift_and_new_loss(strategy, config)
    assert drift < 0.9 * naive_drift, (drift, naive_drift)
    assert loss < 1.5 * naive_loss + 0.5, (loss, naive_loss)  # it still learned the new facts


def _loss_on(lm: LanguageModel, peft_model, examples) -> float:
    encoded = [encode_example(lm, e, 512) for e in examples]
    with torch.no_grad():
        return float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])


def test_replay_keeps_an_earlier_sleeps_facts_better_than_naive() -> None:
    """Replay's job is the earlier sleeps' facts (pseudo-rehearsal barely moves drift on base
    knowledge: the sleep study measures that), so it is tested on those."""
    config = TrainConfig(rank=8, epochs=10, learning_rate=3e-3, bf16=False)
    lm = build_tiny_model()
    first = synthesise([_memory(1, FACT)])
    second = synthesise([_memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    kept = {}
    for strategy in ("naive", "replay"):
        peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
        train_module(lm, peft_model, first, parse_strategy("naive"), config)  # sleep 1
        learned = _loss_on(lm, peft_model, first)
        train_module(lm, peft_model, second, parse_strategy(strategy), config, replay=first)  # sleep 2
        kept[strategy] = _loss_on(lm, peft_model, first) - learned
    assert kept["naive"] > 0.5 and kept["replay"] < 0.5 * kept["naive"], kept


def test_packed_rows_give_the_same_loss_as_one_example_per_row() -> None:
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    encoded = [encode_example(lm, e, 512) for e in examples]
    peft_model = attach_lora(lm, TrainConfig(rank=4, bf16=False))
    from lifelong.learn.packing import pack_rows

    assert len(pack_rows(encoded, 512)) < len(encoded)  # something was actually packed
    with torch.no_grad():
        alone = answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id, pack_length=None)
        packed = answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id, pack_length=512)
    assert float(packed[0]) == pytest.approx(float(alone[0]), abs=1e-5)
    assert packed[1:] == alone[1:]


def test_packed_rows_lay_out_a_shared_opening_once_with_the_loss_and_gradients_of_examples_alone() -> None:
    from lifelong.learn.packing import pack_rows, row_tokens, shared_prefix
    from lifelong.learn.synthesis import context_examples

    lm = build_tiny_model()
    memories = [_memory(1, FACT), _memory(2, "Ilse Varnor keeps bees on the roof of the Brno opera house.")]
    examples = synthesise(memories)
    examples += context_examples(examples, memories, distractors=1, seed=0)  # two openings: with notes and without
    encoded = [s for s in (encode_example(lm, e, 512) for e in examples) if s]
    rows = pack_rows(encoded, 512, share_prefixes=True)
    assert sorted(map(id, (s for row in rows for s in row))) == sorted(map(id, encoded))  # every example, once
    assert all(row_tokens(row, True) <= 512 for row in rows)
    assert all(shared_prefix(row) < min(start for _, start in row) for row in rows)  # answers stay their own
    saved = sum(len(ids) for ids, _ in encoded) - sum(row_tokens(row, True) for row in rows)
    assert saved > 0.1 * sum(len(ids) for ids, _ in encoded)  # the openings are a real share of the tokens
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=4, bf16=False))
    with torch.no_grad():  # B starts at zero, which would leave A without gradient
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.02)
    params = [p for p in peft_model.parameters() if p.requires_grad]

    def loss_and_gradient(**packing: object) -> tuple[object, list[torch.Tensor]]:
        for p in params:
            p.grad = None
        parts = answer_loss_parts(peft_model, encoded, lm.tokenizer.pad_token_id, **packing)
        parts.answer_sum.backward()
        return parts, [p.grad.clone() for p in params]

    alone, alone_gradient = loss_and_gradient(pack_length=None)
    shared, shared_gradient = loss_and_gradient(pack_length=512, share_prefixes=True)
    assert float(shared.answer_sum) == pytest.approx(float(alone.answer_sum), rel=1e-5)
    assert (shared.answer_tokens, shared.tokens) == (alone.answer_tokens, alone.tokens)
    assert shared.computed_tokens == alone.computed_tokens - saved
    # a summed loss has large gradients: equal up to float rounding, relative to each one's largest entry
    assert all(float((a - b).abs().max()) <= 1e-5 * float(a.abs().max()) for a, b in zip(alone_gradient, shared_gradient, strict=True))
    assert any(float(a.abs().max()) > 0 for a in alone_gradient)


def test_ewc_penalty_equals_the_elementwise_sum_under_its_fisher_approximation() -> None:
    from lifelong.learn.weight_anchor import WeightAnchor, lora_factors

    lm = build_tiny_model()
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=4, bf16=False))
    anchor = WeightAnchor(lm, peft_model, ["Once upon a time, there was a", "The river Nile flows through"])
    assert float(anchor()) == 0.0  # no change yet
    torch.manual_seed(1)
    with torch.no_grad():
        for module in anchor.layers.values():
            module.lora_B["default"].weight.normal_()
    brute = 0.0
    for name, module in anchor.layers.items():
        b, a = lora_factors(module)
        b0, a0 = anchor.start[name]
        change = b @ a - b0 @ a0
        brute += float((anchor.rows[name][:, None] * anchor.cols[name][None, :] * change.pow(2)).sum())
    assert float(anchor()) == pytest.approx(brute / anchor.count, rel=1e-4)


def test_continuation_log_probs_match_a_full_forward_pass_on_rows_of_unequal_length() -> None:
    from lifelong.learn.anchors import HELD_OUT_CHAT, HELD_OUT_RAW
    from lifelong.learn.drift import continuation_log_probs, continuation_rows

    lm = build_tiny_model()
    rows = continuation_rows(lm, HELD_OUT_CHAT[:2], HELD_OUT_RAW[:2], continuation=6)
    assert len({len(ids) for ids, _ in rows}) > 1
    with torch.no_grad():
        batched = continuation_log_probs(lm.model, rows, lm.tokenizer.pad_token_id)
        alone = torch.cat([torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits[0, start - 1 : len(ids) - 1].float(), -1)
                           for ids, start in rows])
    assert torch.allclose(batched, alone, atol=1e-4)
    assert kl_to_base(lm, lm) == pytest.approx(0.0, abs=1e-6)


def _distance_to_teacher(peft_model, lm: LanguageModel, examples, memories) -> float:
    """Mean KL(teacher with the memory || student without it) over the answer tokens."""
    from lifelong.learn.soft_targets import teacher_prompt

    total, count = 0.0, 0
    with torch.no_grad():
        for example in examples:
            prompt = teacher_prompt(example, memories)
            ids, start = encode_example(lm, example, 512)
            if prompt is None:
                continue
            context = lm.encode(lm.format_chat(prompt))
            teacher = lm.model(input_ids=torch.tensor([context + ids[start:]])).logits[0, len(context) - 1 : -1]
            student = peft_model(input_ids=torch.tensor([ids])).logits[0, start - 1 : len(ids) - 1]
            total += float(torch.nn.functional.kl_div(student.log_softmax(-1), teacher.log_softmax(-1), log_target=True,
                                                      reduction="sum"))
            count += len(ids) - start
    return total / count


def test_distill_brings_the_module_closer_to_the_teacher_with_the_note_than_hard_answers_do() -> None:
    lm = build_tiny_model()
    memories = {1: _memory(1, FACT)}
    examples = synthesise(list(memories.values()))
    config = TrainConfig(rank=8, epochs=15, learning_rate=3e-3, bf16=False, distill_weight=1.0, max_length=512, pack_length=512)
    distance = {}
    for strategy in ("naive", "distill"):
        peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
        train_module(lm, peft_model, examples, parse_strategy(strategy), config, memories=memories)
        distance[strategy] = _distance_to_teacher(peft_model, lm, examples, memories)
    assert distance["distill"] < 0.8 * distance["naive"], distance


def test_fp32_training_runs_one_packed_row_per_pass_by_default_and_bf16_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.learn import trainer
    from lifelong.learn.packing import pack_rows

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    encoded = [encode_example(lm, e, 512) for e in examples]
    peft_model = attach_lora(lm, TrainConfig(rank=4))
    passes: list[int] = []
    counted = trainer.answer_loss_parts

    def counting(model, batch, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - the same call, counted
        passes.append(len(batch))
        return counted(model, batch, *args, **kwargs)

    monkeypatch.setattr(trainer, "answer_loss_parts", counting)
    rows = len(pack_rows(encoded, 128))
    assert rows >= 3
    for bf16, config, expected in ((False, TrainConfig(pack_length=128), rows), (True, TrainConfig(pack_length=128), 1),
                                   (False, TrainConfig(pack_length=128, micro_batch_rows=0), 1),
                                   (True, TrainConfig(pack_length=128, micro_batch_rows=1), rows)):
        passes.clear()
        trainer.step_loss(peft_model, encoded, lm.tokenizer.pad_token_id, config, backward=True, bf16=bf16)
        assert len(passes) == expected and sum(passes) == len(encoded), (bf16, config.micro_batch_rows)


def test_micro_batches_give_the_whole_batchs_gradient_and_counts() -> None:
    from lifelong.learn.packing import pack_rows
    from lifelong.learn.trainer import answer_loss_parts, batch_counts, micro_batches, step_loss

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    encoded = [encode_example(lm, e, 512) for e in examples]
    peft_model = attach_lora(lm, TrainConfig(rank=4, bf16=False))
    with torch.no_grad():  # B starts at zero, which would leave A without gradient
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.02)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    pad = lm.tokenizer.pad_token_id

    def gradient(config: TrainConfig) -> tuple[list[torch.Tensor], float]:
        for p in params:
            p.grad = None
        loss, _ = step_loss(peft_model, encoded, pad, config, backward=True)
        return [p.grad.clone() for p in params], float(loss)

    whole, whole_loss = gradient(TrainConfig(pack_length=128, micro_batch_rows=0))  # 0: the whole batch in one pass
    assert len(pack_rows(encoded, 128)) >= 3 and len(micro_batches(encoded, 128, 1)) == len(pack_rows(encoded, 128))
    split, split_loss = gradient(TrainConfig(pack_length=128, micro_batch_rows=1))  # one row per pass
    assert split_loss == pytest.approx(whole_loss, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(whole, split, strict=True))
    from lifelong.learn.soft_targets import teacher_targets

    memories = {m.id: m for m in (_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh."))}
    soft = {id(encoded[i]): t for i, t in teacher_targets(lm, examples, encoded, memories, 512).items()}
    assert soft and len(soft) < len(encoded)  # some examples have teacher targets, not all
    with torch.no_grad():
        parts = answer_loss_parts(peft_model, encoded, pad, 128, soft)
    assert batch_counts(encoded, soft) == (parts.answer_tokens, parts.soft_tokens, parts.tokens)


def _trained_lora(lm: LanguageModel, examples: list, **knobs: object) -> list[torch.Tensor]:
    """The LoRA weights a small naive training run ends with, under TrainConfig `knobs`."""
    config = TrainConfig(rank=4, epochs=2, learning_rate=1e-2, bf16=False, **knobs)
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    train_module(lm, peft_model, examples, parse_strategy("naive"), config)
    assert not peft_model.get_base_model().is_activation_checkpointing  # switched off again after training
    return [p.detach().clone() for n, p in peft_model.named_parameters() if "lora_" in n]


def test_gradient_checkpointing_trains_the_same_module() -> None:
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    plain, recomputed = _trained_lora(lm, examples), _trained_lora(lm, examples, gradient_checkpointing=True)
    assert any(float(p.abs().sum()) > 0 for p in plain if p.ndim)  # it trained
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, recomputed, strict=True))


def test_compiled_decoder_layers_train_the_same_module_and_are_eager_again_afterwards() -> None:
    from lifelong.learn.compiled_layers import compiled_decoder_layers, decoder_layers

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    plain, compiled = _trained_lora(lm, examples), _trained_lora(lm, examples, compile_layers=True)
    assert any(float(p.abs().sum()) > 0 for p in plain if p.ndim)  # it trained
    # fused kernels sum in another order: the same module up to float rounding, not bit for bit
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-3) for a, b in zip(plain, compiled, strict=True))
    model = copy.deepcopy(lm.model)
    with compiled_decoder_layers(model, True) as on:
        assert on and all("forward" in vars(layer) for layer in decoder_layers(model))
    assert not any("forward" in vars(layer) for layer in decoder_layers(model))  # the class's eager forward again
    with compiled_decoder_layers(torch.nn.Linear(2, 2), True) as on:  # no decoder layers: nothing to compile
        assert not on


def _two_facts_packed_two_to_a_row(lm: LanguageModel) -> tuple[list, list]:
    """Two facts' examples, and the first 8 encoded, of which at least two share a 480-token
    packed row behind a block mask (the packed-row tests compare these packed and alone)."""
    from lifelong.learn.packing import pack_rows

    examples = synthesise([_memory(1, FACT), _memory(2, "Ilse Varnor keeps bees on the roof of the Brno opera house.")])
    segments = [s for s in (encode_example(lm, e, 400) for e in examples) if s][:8]
    assert max(len(row) for row in pack_rows(segments, 480)) > 1
    return examples, segments


def test_eager_attention_trains_the_same_module_on_packed_rows_and_sdpa_comes_back_afterwards() -> None:
    from lifelong.learn.training_attention import attention_implementation, training_attention

    lm = build_tiny_model()
    examples, segments = _two_facts_packed_two_to_a_row(lm)
    packed = {"pack_length": 480, "max_length": 400}  # two of these examples share each row, behind a block mask
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=4))
    with training_attention(peft_model.get_base_model(), "eager") as running, torch.no_grad():
        assert running == "eager"
        alone, together = (answer_loss_parts(peft_model, segments, lm.tokenizer.pad_token_id, width) for width in (None, 480))
    assert torch.allclose(alone.answer_sum, together.answer_sum, rtol=1e-5)  # the mask keeps packed examples apart
    assert attention_implementation(peft_model.get_base_model()) == attention_implementation(lm.model) == "sdpa"
    plain, eager = _trained_lora(lm, examples, **packed), _trained_lora(lm, examples, attention="eager", **packed)
    assert any(float(p.abs().sum()) > 0 for p in plain if p.ndim)  # it trained
    # another kernel sums in another order: the same module up to float rounding, not bit for bit
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-3) for a, b in zip(plain, eager, strict=True))
    config = TrainConfig(rank=4, epochs=1, bf16=False, attention="eager")
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    stats = train_module(lm, peft_model, examples, parse_strategy("naive"), config)
    assert stats.attention == "eager" and attention_implementation(peft_model.get_base_model()) == "sdpa"


def test_training_attention_runs_in_fp32_under_bf16_autocast_by_default_and_sdpa_comes_back_afterwards() -> None:
    """The default training kernel computes attention in fp32 inside a bf16 step (the fused
    kernel's bf16 backward with a mask is the slower one on CPUs), hands back the queries'
    dtype, and is the model's sdpa again once training ends."""
    import torch.nn.functional as F

    from lifelong.learn.training_attention import attention_implementation, sdpa_in_fp32

    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 4, 24, 16) for _ in range(3))
    mask = torch.ones(24, 24, dtype=torch.bool).tril().expand(2, 1, 24, 24)
    layer = torch.nn.Module()
    layer.num_key_value_groups, layer.is_causal = 1, True
    exact = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, _ = sdpa_in_fp32(layer, query, key, value, mask, dropout=0.0, scaling=None)
        autocast = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    assert ours.dtype == torch.float32 and autocast.dtype == torch.bfloat16
    assert torch.allclose(ours, exact.transpose(1, 2), atol=1e-6)  # fp32 throughout (transformers hands back batch, time, heads)
    assert not torch.allclose(autocast.float(), exact, atol=1e-4)  # where autocast alone rounds to bf16

    lm = build_tiny_model()
    config = TrainConfig(rank=4, epochs=1, bf16=True)
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    stats = train_module(lm, peft_model, synthesise([_memory(1, FACT)]), parse_strategy("naive"), config)
    assert stats.attention == "sdpa_fp32" and stats.precision == "bf16"
    assert attention_implementation(peft_model.get_base_model()) == "sdpa"


def test_a_module_scored_inside_each_training_kernel_answers_padded_prompts_as_it_does_outside() -> None:
    """`after_epoch` scores a module inside the training loop, where the training kernel runs.
    A padded batch's 2-D mask must reach that kernel: without sdpa's mask builder registered
    for it, transformers handed it none and the short prompts attended to their padding."""
    from lifelong.learn.training_attention import TRAINING_ATTENTION_KERNELS, training_attention

    lm = build_tiny_model()
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=4))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)  # a module that changes the answers
    view = LanguageModel(peft_model, lm.tokenizer, "tiny")
    prompts = [[{"role": "user", "content": text}] for text in
               ("Where does Ilse Varnor keep her bees, and since which year?", "Hi", "Who wrote it?")]
    peft_model.eval()
    outside = view.generate_batch(prompts, max_new_tokens=12)
    _, segments = _two_facts_packed_two_to_a_row(lm)
    for kernel in TRAINING_ATTENTION_KERNELS:
        with training_attention(peft_model.get_base_model(), kernel), torch.no_grad():
            assert view.generate_batch(prompts, max_new_tokens=12) == outside, kernel
            alone, together = (answer_loss_parts(peft_model, segments, lm.tokenizer.pad_token_id, width) for width in (None, 480))
        assert torch.allclose(alone.answer_sum, together.answer_sum, rtol=1e-5), kernel  # packed rows stay apart


def test_compile_without_a_cpp_compiler_is_one_actionable_error_and_leaves_the_layers_eager(monkeypatch) -> None:
    import shutil

    from lifelong.errors import InputError
    from lifelong.learn.compiled_layers import compiled_decoder_layers, decoder_layers

    monkeypatch.setattr(shutil, "which", lambda name: None)
    model = build_tiny_model().model
    with pytest.raises(InputError, match="C\\+\\+ compiler"), compiled_decoder_layers(model, True):
        pass
    assert not any("forward" in vars(layer) for layer in decoder_layers(model))


def test_returning_freed_memory_lowers_the_threshold_only_while_training_and_trains_the_same_module(monkeypatch) -> None:
    from lifelong.learn import allocator

    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(allocator, "mallopt", lambda parameter, value: calls.append((parameter, value)) or True)
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    plain = _trained_lora(lm, examples)
    assert calls == []  # off by default: the C library is never touched
    returned = _trained_lora(lm, examples, return_freed_memory=True)
    low, ceiling = (allocator.M_MMAP_THRESHOLD, allocator.LOW_MEMORY_THRESHOLD), (allocator.M_MMAP_THRESHOLD, allocator.AFTERWARDS_THRESHOLD)
    assert calls == [low, ceiling]
    assert any(float(p.abs().sum()) > 0 for p in plain if p.ndim)  # it trained
    assert all(torch.equal(a, b) for a, b in zip(plain, returned, strict=True))  # where memory lives changes no number
    calls.clear()
    with pytest.raises(RuntimeError), allocator.large_allocations_returned():
        with allocator.large_allocations_returned():  # nested: only the outermost exit raises the threshold again
            assert calls == [low, low]
        assert calls == [low, low]
        raise RuntimeError("a failed training step")
    assert calls == [low, low, ceiling]


def test_on_glibc_the_threshold_is_really_set() -> None:
    """In a process of its own: the setting outlives the context, and tests share a process."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    code = "from lifelong.learn.allocator import large_allocations_returned as r\nwith r() as applied: print(applied)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def _saved_bytes(run) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass while `run()` runs."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def test_recomputing_the_gated_activation_trains_the_same_module_keeping_less_for_the_backward_pass() -> None:
    """Each gated MLP keeps gate(x) and up(x), not act(gate(x)) too, and recomputes the
    activation in the backward pass: the same gradients, less memory; the MLPs are the model's
    own again after training."""
    from lifelong.learn.gated_mlp import gated_mlps, recomputed_gated_activations

    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    kept, recomputed = _trained_lora(lm, examples, recompute_gated_activation=False), _trained_lora(lm, examples)
    assert any(float(p.abs().sum()) > 0 for p in kept if p.ndim)  # it trained
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(kept, recomputed, strict=True))

    model = copy.deepcopy(lm.model)
    ids = torch.randint(0, model.config.vocab_size, (2, 48))
    for parameter in model.parameters():
        parameter.requires_grad_(True)

    def forward() -> None:
        model(input_ids=ids, use_cache=False).logits.sum()

    with recomputed_gated_activations(model) as switched:
        lean = _saved_bytes(forward)
    assert switched and len(gated_mlps(model)) == model.config.num_hidden_layers
    full = _saved_bytes(forward)
    width, positions = model.config.intermediate_size, ids.numel()
    assert full - lean == model.config.num_hidden_layers * positions * width * 4  # one fp32 activation per layer
    assert not any("forward" in vars(mlp) for mlp in gated_mlps(model))


def test_training_attention_keeps_grouped_keys_unrepeated_and_one_float_mask_per_batch() -> None:
    """The training kernel hands grouped keys and values to the fused kernel as they are and
    turns a boolean mask into a float one once: the same attention as transformers' sdpa, which
    repeats them to every query head, with less kept for the backward pass."""
    from lifelong.learn.training_attention import additive_mask, sdpa_in_fp32, transformers_sdpa_in_fp32

    torch.manual_seed(0)
    query = torch.randn(2, 6, 32, 16, requires_grad=True)
    key, value = (torch.randn(2, 2, 32, 16, requires_grad=True) for _ in range(2))
    mask = torch.ones(32, 32, dtype=torch.bool).tril().expand(2, 1, 32, 32).clone()
    mask[:, :, 16:, :16] = False  # two packed examples per row
    layer = torch.nn.Module()
    layer.num_key_value_groups, layer.is_causal = 3, True
    ours, _ = sdpa_in_fp32(layer, query, key, value, mask)
    theirs, _ = transformers_sdpa_in_fp32(layer, query, key, value, mask)
    assert ours.shape == theirs.shape == (2, 32, 6, 16)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert additive_mask(mask) is additive_mask(mask)  # every layer of a batch shares one float mask
    grads = torch.autograd.grad(ours.sum(), (query, key, value))
    expected = torch.autograd.grad(theirs.sum(), (query, key, value))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grads, expected, strict=True))
    lean = _saved_bytes(lambda: sdpa_in_fp32(layer, query, key, value, mask))
    repeated = _saved_bytes(lambda: transformers_sdpa_in_fp32(layer, query, key, value, mask))
    assert lean < repeated


def test_after_epoch_watches_each_epoch_in_eval_mode_and_can_stop_training_there() -> None:
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT)])
    config = TrainConfig(rank=4, epochs=3, batch_size=2, bf16=False)
    seen: list[tuple[int, bool]] = []

    def watch(epochs_done: int) -> bool:
        seen.append((epochs_done, peft_model.training))
        time.sleep(0.3)  # a slow measurement: not training's cost
        return False

    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    start = time.perf_counter()
    full = train_module(lm, peft_model, examples, parse_strategy("naive"), config, after_epoch=watch)
    assert seen == [(1, False), (2, False)] and full.epochs == 3  # not after the last epoch: training is over
    assert full.seconds <= time.perf_counter() - start - 2 * 0.3
    per_epoch = full.steps // 3

    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    stopped = train_module(lm, peft_model, examples, parse_strategy("naive"), config, after_epoch=lambda done: done == 1)
    assert stopped.epochs == 1 and stopped.steps == per_epoch and not peft_model.training


def test_linear_schedule_decays_the_rate_to_zero_over_the_planned_steps_and_constant_holds_it() -> None:
    from lifelong.errors import InputError
    from lifelong.learn.trainer import scheduled_learning_rate

    for name, expected in (("linear", [1e-3 * (4 - k) / 4 for k in range(4)]), ("constant", [1e-3] * 4)):
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
        schedule = scheduled_learning_rate(optimizer, name, 4)
        rates = []
        for _ in range(4):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        assert rates == pytest.approx(expected), name
    with pytest.raises(InputError, match="linear"):
        scheduled_learning_rate(optimizer, "cosine", 4)


def test_a_linear_schedule_ends_training_on_small_steps() -> None:
    """The last epoch moves the module less under a linear decay than at a constant rate."""
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    moves = {}
    for name in ("constant", "linear"):
        config = TrainConfig(rank=4, epochs=3, batch_size=2, learning_rate=1e-2, learning_rate_schedule=name, bf16=False)
        peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
        snapshots: list[list[torch.Tensor]] = []

        def snapshot(_done: int, peft_model=peft_model, snapshots=snapshots) -> bool:  # noqa: ANN001
            snapshots.append([p.detach().clone() for p in peft_model.parameters() if p.requires_grad])
            return False

        train_module(lm, peft_model, examples, parse_strategy("naive"), config, after_epoch=snapshot)
        final = [p.detach() for p in peft_model.parameters() if p.requires_grad]
        moves[name] = sum(float((a - b).norm()) for a, b in zip(final, snapshots[-1], strict=True))
    assert moves["linear"] < 0.5 * moves["constant"]


def test_recasting_frozen_weights_gives_autocasts_gradients_without_keeping_bf16_weight_copies() -> None:
    """Under bf16 autocast the frozen base layers keep their fp32 parameters for the backward
    pass and cast them again there: the LoRA weights get the same gradients, and autograd holds
    no bf16 copy of any frozen weight. The layers are the model's own again afterwards."""
    from peft import LoraConfig, get_peft_model

    from lifelong.learn.frozen_linear import frozen_linears, recast_frozen_weights

    lm = build_tiny_model()
    model = get_peft_model(copy.deepcopy(lm.model), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # a fresh module's B is zero, so A would get no gradient to compare
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    ids = torch.randint(0, model.config.vocab_size, (2, 40), generator=generator)
    frozen = frozen_linears(model)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def gradients() -> tuple[list[torch.Tensor], int]:
        model.zero_grad(set_to_none=True)
        saved: dict[int, int] = {}

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.untyped_storage().data_ptr() not in parameters:  # a parameter kept by reference costs nothing
                saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, use_cache=False).logits.float().logsumexp(-1).mean()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad], sum(saved.values())

    expected, kept = gradients()
    with recast_frozen_weights(model) as switched:
        ours, lean = gradients()
    assert switched and len(frozen) == 7 * model.config.num_hidden_layers + 1  # every adapted projection's base, and the head
    assert all(torch.equal(a, b) for a, b in zip(expected, ours, strict=True))
    # each frozen weight's bf16 copy, except the first layer's query, key and value projections:
    # their input is the embeddings, which take no gradient, so autocast kept no copy there either
    first = model.get_base_model().model.layers[0].self_attn
    unsaved = {id(getattr(first, name).base_layer) for name in ("q_proj", "k_proj", "v_proj")}
    assert kept - lean == sum(layer.weight.numel() * 2 for layer in frozen if id(layer) not in unsaved)
    assert not any("forward" in vars(layer) for layer in frozen)
