"""Gradients from the answers' positions only (learn/answer_gradients.py): exactly a trainer that
runs the prompt without gradients and only the scored positions with them."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from lifelong.learn import cached_prompts
from lifelong.learn.synthesis import synthesise
from lifelong.learn.trainer import TrainConfig, answer_loss_parts, answer_only_loss, attach_lora, encode_example, train_module
from lifelong.learn.strategies import parse_strategy
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.model.tiny import build_tiny_model

FACT = "The Vellmar Observatory in northern Norway was founded in 1987 by the astronomer Ilse Brandvik."


def _fact() -> Memory:
    return Memory(1, FACT, "t", "user", "default", "fact", None, 0.0, 0.0, None, None, "h")


def _lora_model(lm: LanguageModel):  # noqa: ANN202 - PEFT type
    """A LoRA model whose B factors are not zero, so every factor has a gradient."""
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), TrainConfig(rank=4, bf16=False))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in peft_model.parameters():
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return peft_model


def _gradients(peft_model, loss) -> list[torch.Tensor]:  # noqa: ANN001
    params = [p for p in peft_model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    loss().backward()
    return [p.grad.clone() for p in params]


def _close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    """Each parameter's gradients equal up to float summation order (1e-5 of its norm)."""
    return all(float((x - y).norm()) <= 1e-5 * float(y.norm()) + 1e-9 for x, y in zip(a, b, strict=True))


def test_answer_gradients_equal_a_cached_prompt_pass_and_differ_from_full_training() -> None:
    lm = build_tiny_model()
    peft_model = _lora_model(lm)
    pad = lm.tokenizer.pad_token_id
    ids, start = encode_example(lm, synthesise([_fact()])[0], 512)

    def two_pass() -> torch.Tensor:  # the prompt (all but its last token) cached without gradients
        causal = peft_model.get_base_model()
        with torch.no_grad():
            past = causal(input_ids=torch.tensor([ids[: start - 1]]), use_cache=True).past_key_values
        logits = causal(input_ids=torch.tensor([ids[start - 1 :]]), past_key_values=past, use_cache=True).logits[0, :-1]
        return F.cross_entropy(logits.float(), torch.tensor(ids[start:]), reduction="sum")

    cut = _gradients(peft_model, lambda: answer_loss_parts(peft_model, [(ids, start)], pad, answer_gradients_only=True).answer_sum)
    full = _gradients(peft_model, lambda: answer_loss_parts(peft_model, [(ids, start)], pad).answer_sum)
    assert _close(cut, _gradients(peft_model, two_pass))
    assert not _close(cut, full)  # the prompts' positions did contribute before


def test_packed_rows_cut_each_example_at_its_own_answer() -> None:
    lm = build_tiny_model()
    peft_model = _lora_model(lm)
    pad = lm.tokenizer.pad_token_id
    encoded = [encode_example(lm, e, 512) for e in synthesise([_fact()])[:3]]
    packed = _gradients(peft_model, lambda: answer_loss_parts(peft_model, encoded, pad, 512, share_prefixes=True,
                                                              answer_gradients_only=True).answer_sum)
    one_by_one = [_gradients(peft_model, lambda e=e: answer_loss_parts(peft_model, [e], pad, answer_gradients_only=True).answer_sum)
                  for e in encoded]
    assert _close(packed, [sum(g) for g in zip(*one_by_one, strict=True)])


def test_a_module_trained_on_answer_gradients_only_still_learns_its_fact() -> None:
    lm = build_tiny_model()
    examples = synthesise([_fact()])
    config = TrainConfig(rank=8, epochs=40, learning_rate=1e-2, bf16=False, answer_gradients_only=True)
    peft_model = attach_lora(LanguageModel(copy.deepcopy(lm.model), lm.tokenizer, "tiny"), config)
    encoded = [encode_example(lm, e, 512) for e in examples]
    with torch.no_grad():
        before = float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])
    train_module(lm, peft_model, examples, parse_strategy("naive"), config)
    with torch.no_grad():
        after = float(answer_only_loss(peft_model, encoded, lm.tokenizer.pad_token_id)[0])
    assert after < 0.5 * before


def test_two_pass_steps_give_the_hooks_gradients_on_packed_rows(monkeypatch) -> None:  # noqa: ANN001
    """learn/cached_prompts.py: prompts run once without gradients, the scored positions with
    them; the same loss and gradients as the hooks' one pass, packed rows and a lone row alike."""
    from lifelong.learn import trainer
    from lifelong.learn.training_attention import FP32_SDPA, training_attention

    two_passes = []
    monkeypatch.setattr(trainer, "scored_hidden_states", lambda *a: two_passes.append(1) or cached_prompts.scored_hidden_states(*a))

    lm = build_tiny_model()
    peft_model = _lora_model(lm)
    pad = lm.tokenizer.pad_token_id
    encoded = [encode_example(lm, e, 512) for e in synthesise([_fact()])[:4]]
    with training_attention(peft_model.get_base_model(), FP32_SDPA):
        for batch, capacity in ((encoded, 512), (encoded[:1], 512), (encoded, None)):
            losses = {}

            def loss(cached: bool, batch=batch, capacity=capacity) -> torch.Tensor:  # noqa: ANN001
                parts = answer_loss_parts(peft_model, batch, pad, capacity, share_prefixes=True, answer_gradients_only=True,
                                          cached_prompts=cached)
                losses[cached] = float(parts.answer_sum)
                return parts.answer_sum

            assert _close(_gradients(peft_model, lambda: loss(True)), _gradients(peft_model, lambda: loss(False)))
            assert abs(losses[True] - losses[False]) <= 1e-4 * abs(losses[False])
    assert len(two_passes) == 3  # once per batch shape: the two-pass step did run
