"""Train a LoRA module on synthesised examples, computing loss only where it matters.

Only answer tokens carry loss, and only their positions go through the LM head: for a
135M model with a 49k vocabulary the vocabulary projection of every position costs more than
the transformer itself. Examples are batched by length (little padding), and bf16 autocast is
used where the CPU supports it. The KL strategy compares next-token distributions on general
anchor prompts with the adapter on and off, so the module is pulled back toward the frozen
model wherever the new facts are irrelevant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.learn.strategies import Strategy
from lifelong.learn.synthesis import TrainingExample
from lifelong.model.language_model import LanguageModel

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# General prompts whose answers the module should leave alone (KL anchors).
ANCHOR_PROMPTS = (
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Write a short greeting to a friend.",
    "What is 12 times 7?",
    "Name three primary colours.",
    "Who wrote Romeo and Juliet?",
    "Give me a tip for sleeping better.",
    "What is the boiling point of water?",
)

# Plain-text openings (no chat template): a module trained only on chat turns can still bend
# raw completions ("The capital of France is" -> a new fact's words), so KL watches both.
RAW_ANCHORS = (
    "Once upon a time, there was a",
    "The recipe calls for two cups of",
    "In the morning, I usually",
    "The history of the Roman Empire",
    "Machine learning is a field of",
    "Dear Sir or Madam, I am writing to",
    "The city council announced that",
    "The most important thing about",
)


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 16
    alpha: int = 32
    epochs: int = 4
    learning_rate: float = 1e-3
    batch_size: int = 8
    max_length: int = 192
    kl_weight: float = 1.0
    replay_per_batch: int = 2
    trainable_layers: int | None = None  # adapt only the last N decoder layers; None = all
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    seed: int = 0
    bf16: bool = field(default_factory=lambda: _cpu_has_bf16())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainStats:
    steps: int
    tokens: int
    answer_tokens: int
    seconds: float
    final_loss: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _cpu_has_bf16() -> bool:
    try:
        return "avx512_bf16" in open("/proc/cpuinfo").read() or "amx_bf16" in open("/proc/cpuinfo").read()
    except OSError:
        return False


def _layer_count(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)


def attach_lora(lm: LanguageModel, config: TrainConfig, adapter_path: str | None = None) -> Any:
    """A PeftModel over the LM: fresh, or continuing from a saved adapter (trainable)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_path is not None:
        return PeftModel.from_pretrained(lm.model, adapter_path, is_trainable=True)
    layers = None
    if config.trainable_layers:
        total = _layer_count(lm.model)
        layers = list(range(max(0, total - config.trainable_layers), total))
    lora = LoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, target_modules=list(config.target_modules),
        layers_to_transform=layers, task_type="CAUSAL_LM",
    )
    return get_peft_model(lm.model, lora)


def encode_example(lm: LanguageModel, example: TrainingExample, max_length: int) -> tuple[list[int], int] | None:
    """(token ids, index where the answer starts); the answer ends with the end-of-turn token."""
    prompt = lm.encode(lm.format_chat(example.prompt))
    answer = lm.tokenizer((" " if not lm.has_chat_template else "") + example.answer, add_special_tokens=False)["input_ids"]
    answer = answer + [lm.tokenizer.eos_token_id]
    ids = prompt + answer
    if len(ids) > max_length:
        return None
    return ids, len(prompt)


def _batches(encoded: list[tuple[list[int], int]], batch_size: int, rng: random.Random) -> list[list[tuple[list[int], int]]]:
    """Length-bucketed batches: sort by length, cut, shuffle the batch order."""
    ordered = sorted(encoded, key=lambda e: len(e[0]))
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    rng.shuffle(batches)
    return batches


def answer_only_loss(peft_model: Any, batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, int, int]:
    """Cross-entropy over answer tokens, projecting only those positions through the LM head."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), -100)
    for row, (ids, start) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        targets[row, start - 1 : len(ids) - 1] = torch.tensor(ids[start:])  # position t predicts t+1
    causal_lm = peft_model.get_base_model()
    hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    mask = targets != -100
    logits = causal_lm.lm_head(hidden[mask]).float()
    loss = F.cross_entropy(logits, targets[mask])
    return loss, int(attention.sum()), int(mask.sum())


class AnchorKL:
    """KL(base || adapted) on the last positions of general chat prompts and plain-text
    openings; base log-probs are computed once."""

    def __init__(self, lm: LanguageModel, peft_model: Any, prompts: Sequence[str] = ANCHOR_PROMPTS,
                 raw: Sequence[str] = RAW_ANCHORS, positions: int = 8) -> None:
        rows = [lm.encode(lm.format_chat([{"role": "user", "content": p}])) for p in prompts]
        rows += [lm.encode(text) for text in raw]
        width = max(len(r) for r in rows)
        pad = lm.tokenizer.pad_token_id
        self.input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])  # left-pad: last positions align
        self.attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        self.positions = positions
        self.peft_model = peft_model
        with torch.no_grad(), peft_model.disable_adapter():
            self.base_log_probs = self._log_probs()

    def _log_probs(self) -> torch.Tensor:
        causal_lm = self.peft_model.get_base_model()
        hidden = causal_lm.model(input_ids=self.input_ids, attention_mask=self.attention).last_hidden_state
        return F.log_softmax(causal_lm.lm_head(hidden[:, -self.positions :]).float(), dim=-1)

    def __call__(self) -> torch.Tensor:
        adapted = self._log_probs()
        return F.kl_div(adapted, self.base_log_probs, log_target=True, reduction="batchmean") / self.positions


def train_module(
    lm: LanguageModel,
    peft_model: Any,
    examples: Sequence[TrainingExample],
    strategy: Strategy,
    config: TrainConfig,
    replay: Sequence[TrainingExample] = (),
    progress: Any = None,
) -> TrainStats:
    """Train the adapter in place; returns what it cost."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    encoded = [e for e in (encode_example(lm, ex, config.max_length) for ex in examples) if e is not None]
    replay_encoded = [e for e in (encode_example(lm, ex, config.max_length) for ex in replay) if e is not None] if strategy.replay else []
    kl = AnchorKL(lm, peft_model) if strategy.kl else None
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    pad = lm.tokenizer.pad_token_id
    peft_model.train()
    steps = tokens = answer_tokens = 0
    loss_value = float("nan")
    start = time.perf_counter()
    plan = [batch for _ in range(config.epochs) for batch in _batches(encoded, config.batch_size, rng)]
    for batch in plan:
        if replay_encoded:
            batch = batch + rng.sample(replay_encoded, min(config.replay_per_batch, len(replay_encoded)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss, batch_tokens, batch_answer = answer_only_loss(peft_model, batch, pad)
            if kl is not None:
                loss = loss + config.kl_weight * kl()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        steps += 1
        tokens += batch_tokens
        answer_tokens += batch_answer
        loss_value = float(loss.detach())
        if progress is not None:
            progress(steps, len(plan), loss_value)
    peft_model.eval()
    return TrainStats(steps, tokens, answer_tokens, time.perf_counter() - start, loss_value)
