"""The loops a user writes by hand with peft: fp32, labels over the full vocabulary, each
batch padded to its longest sequence, no packing. Same LoRA, learning rate, epochs, weight
decay and gradient clipping as a sleep, so what differs is the objective and the engineering."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from lifelong.bench.lines import training_progress
from lifelong.learn.synthesis import TrainingExample
from lifelong.learn.trainer import TrainConfig, attach_lora, encode_example
from lifelong.model.language_model import LanguageModel

Sequences = list[tuple[list[int], int]]  # token ids, index of the first token that carries loss


def padded_loop(model: Any, sequences: Sequences, config: TrainConfig, seed: int, pad: int, label: str) -> dict[str, float]:
    import torch

    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    total = (len(sequences) + config.batch_size - 1) // config.batch_size * config.epochs
    step, tokens, loss_value = 0, 0, float("nan")
    report = training_progress(label)
    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = sequences[:]
        rng.shuffle(order)
        for i in range(0, len(order), config.batch_size):
            batch = order[i : i + config.batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([[-100] * s + ids[s:] + [-100] * (width - len(ids)) for ids, s in batch])
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            tokens += int(attention.sum())
            step += 1
            loss_value = float(loss.detach())
            report(step, total, loss_value)
    model.eval()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "train_seconds": seconds, "tokens": tokens, "steps": step,
            "tokens_per_second": tokens / seconds if seconds else 0.0, "final_loss": loss_value}


class RawTextFineTune:
    """The naive baseline arm: a LoRA trained on the raw text with next-token loss on every
    token. A text longer than max_length is cut into consecutive windows, so nothing is
    dropped. Calling `train` again continues the same adapter (sequential fine-tuning)."""

    def __init__(self, base: LanguageModel, config: TrainConfig) -> None:
        self.base, self.config = base, config
        clone = base.with_own_weights()
        self.model = attach_lora(clone, config)
        self.lm = LanguageModel(self.model, base.tokenizer, base.name, base.needs_bos)
        self.texts: list[str] = []

    def train(self, texts: Sequence[str], label: str = "naive fine-tune") -> dict[str, float]:
        eos = self.base.tokenizer.eos_token_id
        windows = [(w, 0) for t in texts for w in _windows(self.base.encode(t) + [eos], self.config.max_length)]
        stats = padded_loop(self.model, windows, self.config, self.config.seed + len(self.texts), self.base.tokenizer.pad_token_id, label)
        self.texts += list(texts)
        return {**stats, "texts": len(texts), "windows": len(windows)}


def _windows(ids: list[int], length: int) -> list[list[int]]:
    return [ids[i : i + length] for i in range(0, len(ids), length) if len(ids[i : i + length]) > 1]


def naive_peft_loop(base: LanguageModel, examples: Sequence[TrainingExample], config: TrainConfig) -> dict[str, float]:
    """The same synthesised examples as a sleep, loss on the answers, trained the naive way."""
    lm = base.with_own_weights()
    model = attach_lora(lm, config)
    encoded = [e for e in (encode_example(base, ex, config.max_length) for ex in examples) if e is not None]
    return padded_loop(model, encoded, config, config.seed, base.tokenizer.pad_token_id, "naive PEFT loop")
