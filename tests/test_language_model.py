"""Generation and scoring on a tiny random model: determinism, batching, BOS, context limits."""

from __future__ import annotations

import pytest
import torch

from lifelong.errors import InputError, ModelNotFoundError
from lifelong.model import load_model
from lifelong.model.language_model import LanguageModel, generation_batches
from lifelong.model.tiny import build_tiny_model

MESSAGES = [{"role": "user", "content": "Who founded the Vellmar Observatory?"}]


def test_greedy_generation_is_deterministic(tiny_lm: LanguageModel) -> None:
    assert tiny_lm.generate(MESSAGES, max_new_tokens=12) == tiny_lm.generate(MESSAGES, max_new_tokens=12)


def test_generation_batches_fill_rows_up_to_a_prompt_token_budget_shortest_first() -> None:
    lengths = [40, 200, 45, 250, 38, 5000]
    assert generation_batches(lengths, rows=2, tokens=500) == [[4, 0], [2, 1], [3], [5]]  # 2 rows at most
    batches = generation_batches(lengths, rows=2, tokens=300)
    assert batches == [[4, 0], [2], [1], [3], [5]]  # 2 x 200 > 300; the 5000-token prompt is a batch alone
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert generation_batches([40] * 100, rows=64, tokens=4096) == [list(range(64)), list(range(64, 100))]
    assert generation_batches([200] * 40, rows=64, tokens=4096) == [list(range(20)), list(range(20, 40))]


def test_answers_are_the_same_whatever_the_batching(tiny_lm: LanguageModel) -> None:
    conversations = [[{"role": "user", "content": "Who founded the Vellmar Observatory?" + " Tell me." * n}] for n in range(6)]
    one_by_one = [tiny_lm.generate(c, max_new_tokens=8) for c in conversations]
    assert tiny_lm.generate_batch(conversations, max_new_tokens=8) == one_by_one


def test_sampling_repeats_with_the_same_seed(tiny_lm: LanguageModel) -> None:
    first = tiny_lm.generate(MESSAGES, max_new_tokens=12, temperature=1.0, seed=7)
    assert first == tiny_lm.generate(MESSAGES, max_new_tokens=12, temperature=1.0, seed=7)


def test_batched_scores_equal_one_at_a_time_scores(tiny_lm: LanguageModel) -> None:
    candidates = ["Ilse Brandvik", "no", "a much longer candidate answer than the others"]
    batched = tiny_lm.score(MESSAGES, candidates)
    single = [tiny_lm.score(MESSAGES, [c])[0] for c in candidates]
    assert batched == pytest.approx(single, abs=1e-4)


def test_replies_scored_together_equal_each_scored_alone(tiny_lm: LanguageModel) -> None:
    """The gate scores a topic's probes in shared left-padded batches; padding beside longer
    rows and keeping only the replies' logits must not move any score."""
    conversations = [[{"role": "user", "content": "Who founded the Vellmar Observatory?" + " Tell me." * n}] for n in range(4)]
    replies = ["Ilse Brandvik", "no", "a much longer reply than the other replies are", ""]
    together = tiny_lm.score_replies(conversations, replies, normalize=True)
    alone = [tiny_lm.score(c, [r], normalize=True)[0] for c, r in zip(conversations, replies, strict=True)]
    assert together == pytest.approx(alone, abs=1e-4)
    assert together[-1] == 0.0 and len(set(together)) == 4


def test_scoring_batches_are_cut_to_the_logits_budget_with_the_same_scores(
        tiny_lm: LanguageModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each scoring batch holds its rows' vocabulary-wide logits; under a small budget the rows
    go in more, smaller batches and every score stays what it was."""
    from lifelong.model import language_model

    conversations = [[{"role": "user", "content": f"Question {n}: who founded the Vellmar Observatory?"}] for n in range(6)]
    replies = ["Ilse Brandvik", "no", "a much longer reply than the other replies are", "yes", "Vellmar", "1964"]
    together = tiny_lm.score_replies(conversations, replies, normalize=True)
    widest = max(len(tiny_lm.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies) + 1
    row_bytes = 2 * 4 * widest * tiny_lm.model.config.vocab_size
    monkeypatch.setattr(language_model, "SCORING_LOGITS_BYTES", 2 * row_bytes)  # two rows a batch
    forwards = []
    original = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward", lambda *a, **k: forwards.append(k["input_ids"].shape[0]) or original(*a, **k))
    assert tiny_lm.score_replies(conversations, replies, normalize=True) == pytest.approx(together, abs=1e-5)
    assert forwards == [2, 2, 2]


def test_score_is_the_sum_of_candidate_token_log_probs(tiny_lm: LanguageModel) -> None:
    prompt = tiny_lm.encode(tiny_lm.format_chat(MESSAGES))
    answer = tiny_lm.tokenizer("yes", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=torch.tensor([prompt + answer])).logits[0]
    log_probs = torch.log_softmax(logits, -1)
    expected = sum(float(log_probs[len(prompt) - 1 + i, t]) for i, t in enumerate(answer))
    assert tiny_lm.score(MESSAGES, ["yes"])[0] == pytest.approx(expected, abs=1e-4)
    assert tiny_lm.score(MESSAGES, ["yes"], normalize=True)[0] == pytest.approx(expected / len(answer), abs=1e-4)


def test_bos_is_prepended_exactly_once_when_the_model_needs_it() -> None:
    tiny = build_tiny_model()
    with_bos = LanguageModel(tiny.model, tiny.tokenizer, "bos-model", needs_bos=True)
    bos = tiny.tokenizer.bos_token_id
    ids = with_bos.encode("hello")
    assert ids[0] == bos and ids.count(bos) == 1
    assert with_bos.encode(tiny.tokenizer.bos_token + "hello") == ids
    assert tiny.encode("hello")[0] != bos


def test_base_model_without_chat_template_uses_a_plain_layout() -> None:
    tiny = build_tiny_model()
    tiny.tokenizer.chat_template = None
    assert tiny.format_chat(MESSAGES) == "Question: Who founded the Vellmar Observatory?\nAnswer:"


def test_prompt_longer_than_the_context_window_is_refused(tiny_lm: LanguageModel) -> None:
    with pytest.raises(InputError, match="context window of 512"):
        tiny_lm.generate([{"role": "user", "content": "x" * 600}])


def test_unknown_model_reference_says_what_to_do(tmp_path) -> None:
    with pytest.raises(ModelNotFoundError, match="offline or unknown id.*--model PATH"):
        load_model("some-org/not-a-real-model")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "missing-folder"))
    with pytest.raises(ModelNotFoundError, match="no config.json and no .gguf"):
        load_model(str(tmp_path))


def test_a_saved_model_folder_loads_with_from_pretrained(tiny_model_dir) -> None:
    loaded = load_model(str(tiny_model_dir))
    original = build_tiny_model()
    assert loaded.generate(MESSAGES, max_new_tokens=8) == original.generate(MESSAGES, max_new_tokens=8)


def test_a_vanishing_temperature_is_greedy_instead_of_crashing(tiny_lm) -> None:
    messages = [{"role": "user", "content": "0"}]
    assert tiny_lm.generate(messages, max_new_tokens=4, temperature=1.65e-165) == tiny_lm.generate(messages, max_new_tokens=4)


def test_a_weight_sharing_copy_trains_lora_without_touching_or_duplicating_the_base(tiny_lm: LanguageModel) -> None:
    from lifelong.learn.trainer import TrainConfig, attach_lora
    from lifelong.model.language_model import weight_sharing_copy

    before = {name: value.clone() for name, value in tiny_lm.model.state_dict().items()}
    flags = {name: p.requires_grad for name, p in tiny_lm.model.named_parameters()}
    clone = weight_sharing_copy(tiny_lm.model)
    pointers = {p.data_ptr() for p in tiny_lm.model.parameters()}
    assert {p.data_ptr() for p in clone.parameters()} == pointers  # no second copy of any weight
    tied = tiny_lm.model.get_output_embeddings().weight is tiny_lm.model.get_input_embeddings().weight
    assert (clone.get_output_embeddings().weight is clone.get_input_embeddings().weight) == tied
    peft_model = attach_lora(LanguageModel(clone, tiny_lm.tokenizer, tiny_lm.name), TrainConfig(rank=4, seed=0))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1.0)
    ids = torch.tensor([tiny_lm.encode("The Vellmar Observatory was founded by Ilse Brandvik.")])
    for _ in range(3):
        optimizer.zero_grad()
        peft_model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    assert any(float(p.detach().abs().sum()) > 0 for name, p in peft_model.named_parameters() if "lora_B" in name)  # it learned
    assert {name: p.requires_grad for name, p in tiny_lm.model.named_parameters()} == flags  # PEFT froze the copy only
    assert all(torch.equal(value, before[name]) for name, value in tiny_lm.model.state_dict().items())


def test_a_copy_with_its_own_weights_can_be_written_without_changing_the_original(tiny_lm: LanguageModel) -> None:
    before = {name: value.clone() for name, value in tiny_lm.model.state_dict().items()}
    own = tiny_lm.with_own_weights()
    assert not {p.data_ptr() for p in own.model.parameters()} & {p.data_ptr() for p in tiny_lm.model.parameters()}
    with torch.no_grad():
        for parameter in own.model.parameters():
            parameter.add_(1.0)  # what a merge does to the copy's weights
    assert all(torch.equal(value, before[name]) for name, value in tiny_lm.model.state_dict().items())
    assert (own.name, own.tokenizer, own.needs_bos) == (tiny_lm.name, tiny_lm.tokenizer, tiny_lm.needs_bos)


def test_next_token_stats_read_only_the_last_position_and_match_the_full_forward(tiny_lm) -> None:
    from lifelong.evaluate.probes import next_token_stats

    prompts = ["The Korvath Bridge was designed by", "Captain Oru Tadeski sailed solo across the Lake of"]
    stats = next_token_stats(tiny_lm, prompts)
    for prompt, (top, p_top, _) in zip(prompts, stats, strict=True):
        with torch.inference_mode():
            probs = torch.softmax(tiny_lm.model(input_ids=torch.tensor([tiny_lm.encode(prompt)])).logits[0, -1].float(), -1)
        assert top == int(probs.argmax()) and p_top == pytest.approx(float(probs.max()), abs=1e-5)
