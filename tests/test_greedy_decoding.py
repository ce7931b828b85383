"""Greedy decoding with finished rows leaving the batch gives `generate`'s tokens exactly."""

from __future__ import annotations

from collections import Counter

import torch

from lifelong.model import language_model
from lifelong.model.greedy_decoding import greedy_decode
from lifelong.model.language_model import LanguageModel, left_padded
from lifelong.model.tiny import build_tiny_model

QUESTIONS = ["Who founded the Vellmar Observatory?", "Who designed the Korvath Bridge?" + " Please say." * 3,
             "Where is the Lake of Qessa?", "When did Captain Oru Tadeski sail solo?" + " Tell me." * 5,
             "What is the capital of France?", "Name a bee product."]


def _left_padded(lm: LanguageModel) -> tuple[torch.Tensor, torch.Tensor]:
    return left_padded([lm.encode(lm.format_chat([{"role": "user", "content": q}])) for q in QUESTIONS], lm.tokenizer.pad_token_id)


def _generated(lm: LanguageModel, ids: torch.Tensor, mask: torch.Tensor, stops: list[int], tokens: int,
               **kwargs: object) -> list[list[int]]:
    """`generate`'s new tokens per row, cut after the first stop token (it pads after it)."""
    output = lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, eos_token_id=stops,
                               pad_token_id=lm.tokenizer.pad_token_id, do_sample=False, **kwargs)[:, ids.shape[1]:].tolist()
    return [row[: next((i + 1 for i, t in enumerate(row) if t in stops), len(row))] for row in output]


def _stops_that_finish_rows_early(reference: list[list[int]]) -> list[int]:
    """Two tokens the rows write early on, so that rows stop at different steps."""
    early = Counter(t for row in reference for t in row[1:6])
    return [t for t, _ in early.most_common(2)]


def test_rows_that_stop_at_different_steps_get_generates_tokens() -> None:
    lm = build_tiny_model()
    ids, mask = _left_padded(lm)
    stops = _stops_that_finish_rows_early(_generated(lm, ids, mask, [lm.tokenizer.eos_token_id], 16))
    expected = _generated(lm, ids, mask, stops, 16)
    lengths = {len(row) for row in expected}
    assert len(lengths) >= 3 and 16 in lengths  # rows leave at several steps, and some run to the limit
    assert greedy_decode(lm.model, ids, mask, 16, stops) == expected


def test_rows_on_different_adapters_keep_their_own_adapter_as_the_batch_narrows() -> None:
    from peft import LoraConfig, get_peft_model

    lm = build_tiny_model()
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(lm.model, config, adapter_name="a")
    model.add_adapter("b", config)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 0.5)
    model.eval()
    adapted = LanguageModel(model, lm.tokenizer, lm.name, lm.needs_bos)
    ids, mask = _left_padded(adapted)
    names = ["a", "b", "__base__", "b", "a", "__base__"]
    stops = _stops_that_finish_rows_early(_generated(adapted, ids, mask, [lm.tokenizer.eos_token_id], 16, adapter_names=names))
    expected = _generated(adapted, ids, mask, stops, 16, adapter_names=names)
    assert len({len(row) for row in expected}) >= 2
    assert greedy_decode(model, ids, mask, 16, stops, names) == expected
    assert greedy_decode(model, ids, mask, 16, stops, ["a"] * 6) != expected  # the adapters matter here


def test_generate_batch_answers_alike_with_and_without_finished_rows_leaving(monkeypatch) -> None:
    lm = build_tiny_model()
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    leaving = lm.generate_batch(conversations, max_new_tokens=12)
    monkeypatch.setattr(language_model, "FINISHED_ROWS_LEAVE", False)
    assert lm.generate_batch(conversations, max_new_tokens=12) == leaving


def test_a_generation_config_with_a_repetition_penalty_decodes_through_generate() -> None:
    from lifelong.model.greedy_decoding import plain_greedy

    lm = build_tiny_model()
    assert plain_greedy(lm.model)
    lm.model.generation_config.repetition_penalty = 1.3
    assert not plain_greedy(lm.model)
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    ids, mask = _left_padded(lm)
    penalised = lm.model.generate(input_ids=ids[:1], attention_mask=mask[:1], max_new_tokens=12, do_sample=False,
                                  pad_token_id=lm.tokenizer.pad_token_id)
    plain = greedy_decode(lm.model, ids[:1], mask[:1], 12, [lm.tokenizer.eos_token_id])
    assert penalised[0, ids.shape[1]:].tolist() != plain[0]  # the penalty changes this answer
    expected = lm.tokenizer.decode(penalised[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert lm.generate_batch(conversations[:1], max_new_tokens=12) == [expected]
