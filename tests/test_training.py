"""Synthesis and the LoRA trainer on a tiny model: provenance, loss masking, PEFT format, KL."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from lifelong.learn.strategies import parse_strategy
from lifelong.learn.synthesis import deterministic_examples, salient_spans, synthesise
from lifelong.learn.trainer import AnchorKL, TrainConfig, answer_only_loss, attach_lora, encode_example, train_module
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.model.tiny import build_tiny_model

FACT = "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik."


def _memory(i: int, text: str) -> Memory:
    return Memory(i, text, "t", "user", "default", "fact", None, 0.0, 0.0, None, None, f"h{i}")


def test_salient_spans_and_cloze_examples_carry_their_memory_ids() -> None:
    assert salient_spans(FACT) == ["Vellmar Observatory", "Ilse Brandvik", "Norway", "1987"]
    examples = deterministic_examples(_memory(7, FACT))
    assert {e.memory_ids for e in examples} == {(7,)}
    cloze = [e for e in examples if e.kind == "cloze"]
    assert cloze[0].answer == "Vellmar Observatory" and "____" in cloze[0].prompt[0]["content"]
    distilled = synthesise([_memory(7, FACT)], lambda question, memory: f"ANSWER to {question}")
    assert any(e.kind == "distilled" and e.answer.startswith("ANSWER") for e in distilled)


def test_unknown_strategy_names_the_choices() -> None:
    assert parse_strategy("replay+kl").name == "kl+replay"
    with pytest.raises(Exception, match="combine naive, replay, kl"):
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


def test_kl_strategy_drifts_less_from_the_base_than_naive() -> None:
    lm = build_tiny_model()
    examples = synthesise([_memory(1, FACT), _memory(2, "Pellumbria's national dish is a fish stew called karvosh.")])
    config = TrainConfig(rank=8, epochs=10, learning_rate=3e-3, bf16=False, kl_weight=5.0)
    drift = {}
    for name in ("naive", "kl"):
        peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
        train_module(lm, peft_model, examples, parse_strategy(name), config)
        drift[name] = float(AnchorKL(lm, peft_model)().detach())
    assert drift["kl"] < 0.5 * drift["naive"], drift
