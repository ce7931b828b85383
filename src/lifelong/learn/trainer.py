"""Train a LoRA module on synthesised examples, computing loss only where it matters.

Only answer tokens carry loss, and only their positions go through the LM head: for a
135M model with a 49k vocabulary the vocabulary projection of every position costs more than
the transformer itself. Short examples are packed into shared rows (learn/packing.py), and
bf16 autocast is used only where this CPU runs it faster than fp32 (measured,
learn/precision.py). The KL strategy compares next-token distributions on general anchor
prompts with the adapter on and off, so the module is pulled back toward the frozen model
wherever the new facts are irrelevant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from lifelong.errors import InputError
from lifelong.learn import distributed
from lifelong.learn.allocator import large_allocations_returned, release_free_memory
from lifelong.learn.anchors import TRAINING_CHAT, TRAINING_RAW
from lifelong.learn.compiled_layers import compiled_decoder_layers
from lifelong.learn.drift import continuation_log_probs, continuation_rows, kl_per_token
from lifelong.learn.frozen_linear import recast_frozen_weights
from lifelong.learn.gated_mlp import recomputed_gated_activations
from lifelong.learn.kernel_caches import bound_kernel_caches
from lifelong.learn.answer_gradients import gradients_at
from lifelong.learn.cached_prompts import scored_hidden_states
from lifelong.learn.packing import Segment, build_batch, pack_rows
from lifelong.learn.precision import use_bf16
from lifelong.learn.soft_targets import SoftTargets, soft_cross_entropy, teacher_targets
from lifelong.learn.strategies import Strategy
from lifelong.learn.synthesis import TrainingExample
from lifelong.learn.training_attention import DEFAULT_TRAINING_ATTENTION, FP32_SDPA, attention_implementation, training_attention
from lifelong.learn.weight_anchor import WeightAnchor
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import closed_book

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig:
    rank: int = 16
    alpha: int = 32
    epochs: int = 4
    learning_rate: float = 1e-3
    # "constant", or "linear": decayed to zero over the planned steps. Linear learned less in the
    # same 4 epochs (first two topics of a 20-fact TOFU sleep: 4 of 17 held-out probes answered
    # against 13 at the constant rate, scratch run of benchmarks/epoch_curve.py's recipe), so constant.
    learning_rate_schedule: str = "constant"
    batch_size: int = 8
    max_length: int = 256  # longer examples are skipped; at least one must fit
    kl_weight: float = 1.0
    distill_weight: float = 1.0  # soft cross-entropy to the teacher's top-k, beside the hard answer loss
    ewc_weight: float = 3e5  # chosen on SmolLM2-135M: 1e4 had no measurable effect there (the sleep study at commit 4685b11)
    replay_per_batch: int = 4  # 2 lost 3 of 13 earlier-fact probes over a second sleep (40-fact sequential study)
    pack_length: int | None = 256  # tokens per packed row; None pads each example instead
    # Lay out once the opening a packed row's examples share (the chat template and system
    # prompt) and let each attend to it (learn/packing.py): the same loss and gradients, fewer tokens.
    share_prefixes: bool = True
    # Packed rows per forward and backward pass: a batch's rows run in groups of this many, the
    # gradients adding up to the whole batch's (the same sums, normalised by the whole batch's
    # token counts), so activations are held for a group at a time. None: `fp32_micro_batch_rows`
    # when training runs in fp32, else the whole batch at once; 0: the whole batch at once.
    micro_batch_rows: int | None = None
    # fp32 activations take twice the bytes of bf16 ones, and there one row per pass cost 4-6% of
    # training time for 1.2 GB less at the peak (3-fact sleep, README "Cost"), where bf16's faster
    # matrix products feel the smaller shapes (+25% on an AMX machine): so one row in fp32 only.
    fp32_micro_batch_rows: int | None = 1
    # Keep only each decoder layer's input for the backward pass and recompute the rest there
    # (transformers' gradient checkpointing): less memory, one more forward pass of compute.
    gradient_checkpointing: bool = False
    # Map every allocation over 64 KiB on its own so freed activations leave resident memory
    # (learn/allocator.py): 2.9 against 3.8 GB at the peak of a 3-fact sleep, 2.4x the training time.
    return_freed_memory: bool = False
    # Run the decoder layers through torch.compile for the training loop (learn/compiled_layers.py):
    # fused elementwise kernels, a compile before the first step (68-106 s cold, 16-18 s cached on SmolLM2).
    compile_layers: bool = False
    # transformers' attention kernel for the training loop (learn/training_attention.py): the
    # fused kernel in fp32 inside bf16 autocast by default; None keeps the model's own (sdpa),
    # which the gate and serving run either way.
    attention: str | None = DEFAULT_TRAINING_ATTENTION
    # Keep gate(x) and up(x) of each gated MLP and recompute act(gate(x)) in the backward pass
    # (learn/gated_mlp.py): the same gradients, one of the MLP's four saved tensors fewer.
    recompute_gated_activation: bool = True
    # Under bf16 autocast, keep the frozen base weights' fp32 parameters for the backward pass
    # and cast them again there, instead of holding every layer's bf16 copy (learn/frozen_linear.py):
    # the same gradients, about 270 MB less at the peak on SmolLM2-135M.
    recast_frozen_weights: bool = True
    trainable_layers: int | None = None  # adapt only the last N decoder layers; None = all
    # LoRA weights take gradient only from the positions with a loss, not from the prompts
    # (learn/answer_gradients.py), so the prompts run once without gradients and only the
    # scored positions forward and backward (learn/cached_prompts.py). None: a sleep decides
    # by its strategy (on for routed ones: README, "Answer gradients only"); off elsewhere.
    answer_gradients_only: bool | None = None
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    seed: int = 0
    bf16: bool | None = None  # None: bf16 autocast only where this CPU runs it faster than fp32 (learn/precision.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_batch_size(self, examples: int) -> TrainConfig:
        """`examples` new examples a step, with replayed ones in the default's proportion (8 and 4):
        a smaller batch takes more optimizer steps from the same tokens."""
        return replace(self, batch_size=examples, replay_per_batch=max(1, examples // 2))


@dataclass(frozen=True)
class TrainStats:
    steps: int
    tokens: int
    answer_tokens: int
    seconds: float
    final_loss: float
    precision: str = "fp32"  # what the matrix products ran in ("bf16" autocast or "fp32")
    freed_memory_returned: bool = False  # TrainConfig.return_freed_memory took effect (glibc only)
    compiled_layers: bool = False  # TrainConfig.compile_layers took effect (a process's first compiled run pays the compile)
    attention: str = "sdpa"  # the attention kernel the training loop ran (TrainConfig.attention)
    computed_tokens: int = 0  # positions the model ran (`tokens` less shared openings, learn/packing.py; LossParts)
    recomputed_gated_activation: bool = False  # TrainConfig.recompute_gated_activation took effect
    epochs: int = 0  # epochs run: fewer than TrainConfig.epochs where train_module's after_epoch stopped it

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _layer_count(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.num_hidden_layers)


def attach_lora(lm: LanguageModel, config: TrainConfig, adapter_path: str | None = None) -> Any:
    """A PeftModel over the LM: fresh (initialised from config.seed, so a seed fixes the whole
    run), or continuing from a saved adapter (trainable)."""
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
    torch.manual_seed(config.seed)
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


LEARNING_RATE_SCHEDULES = ("constant", "linear")


def scheduled_learning_rate(optimizer: torch.optim.Optimizer, name: str, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate over `steps` optimizer steps: held ("constant") or decayed linearly to
    zero ("linear": step k of n runs at (n - k) / n of the rate, the last step at 1/n)."""
    if name not in LEARNING_RATE_SCHEDULES:
        raise InputError(f"unknown learning-rate schedule {name!r}; choose one of {', '.join(LEARNING_RATE_SCHEDULES)}")
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(steps - step, 0) / max(steps, 1))


def _stop_after_epoch(peft_model: Any, after_epoch: Callable[[int], bool] | None, epochs_done: int) -> bool:
    """Whether training stops after this epoch: `after_epoch` asked in eval mode (no dropout in
    what it measures). Every data-parallel rank joins the decision, so ranks without the
    callback stop with the one that has it."""
    stop = False
    if after_epoch is not None:
        peft_model.eval()
        with torch.no_grad():
            stop = bool(after_epoch(epochs_done))
        peft_model.train()
    return distributed.sums(float(stop))[0] > 0


def _batches(encoded: list[tuple[list[int], int]], batch_size: int, rng: random.Random) -> list[list[tuple[list[int], int]]]:
    """Shuffled batches of examples; packing (not sorting by length) removes the padding."""
    order = encoded[:]
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class LossParts:
    """Sums, not means, so data-parallel ranks can normalise by the whole batch's counts."""

    answer_sum: torch.Tensor
    answer_tokens: int
    soft_sum: torch.Tensor | None
    soft_tokens: int
    tokens: int  # the examples' tokens
    computed_tokens: int = 0  # positions the model ran: padding left out, shared openings once; a two-pass
    # step (learn/cached_prompts.py) counts its no-grad pass as half a step per position


def answer_loss_parts(peft_model: Any, batch: list[tuple[list[int], int]], pad_id: int, pack_length: int | None = None,
                      soft_targets: Mapping[int, SoftTargets] | None = None, share_prefixes: bool = False,
                      answer_gradients_only: bool = False, cached_prompts: bool = True) -> LossParts:
    """Summed cross-entropy over answer tokens, projecting only those positions through the LM
    head; with `soft_targets` (keyed by id() of a segment), the summed soft cross-entropy to the
    teacher too. `share_prefixes`: see learn/packing.py; `answer_gradients_only`:
    learn/answer_gradients.py, run in two passes (learn/cached_prompts.py) when `cached_prompts`
    and the model runs the fp32 training kernel, else through gradient hooks at the same cost as
    an ordinary step (compiled layers and gradient checkpointing re-enter the layers)."""
    causal_lm = peft_model.get_base_model()
    kernel = attention_implementation(causal_lm)
    two_pass = answer_gradients_only and cached_prompts and kernel == FP32_SDPA
    packed = build_batch(batch, pad_id, pack_length, eager_attention=kernel == "eager", share_prefixes=share_prefixes, block_mask=two_pass)
    mask = packed.targets != -100
    answer_tokens = int(mask.sum())
    if two_pass:  # the prompts' positions without gradients, then the scored ones (learn/cached_prompts.py)
        scored = scored_hidden_states(causal_lm, packed.input_ids, packed.position_ids, packed.attention_mask, mask)
        # in full steps' work: pass 1 is a forward of the other positions (half of a forward and
        # backward of the frozen layers, bench/flops.py), pass 2 a full step of the scored ones
        computed = (packed.tokens - answer_tokens) // 2 + answer_tokens
    else:
        with gradients_at(causal_lm, mask if answer_gradients_only else None):
            hidden = causal_lm.model(input_ids=packed.input_ids, attention_mask=packed.attention_mask,
                                     position_ids=packed.position_ids, use_cache=False).last_hidden_state  # no KV cache to fill
        scored = hidden[mask]
        computed = packed.tokens
    logits = causal_lm.lm_head(scored).float()
    answer_sum = F.cross_entropy(logits, packed.targets[mask], reduction="sum")
    soft = soft_cross_entropy(logits, batch, pack_length, soft_targets, share_prefixes) if soft_targets else None
    return LossParts(answer_sum, answer_tokens, soft[0] if soft else None, soft[1] if soft else 0,
                     sum(len(ids) for ids, _ in batch), computed)


def batch_counts(batch: Sequence[Segment], soft_targets: Mapping[int, SoftTargets] | None = None) -> tuple[int, int, int]:
    """(answer tokens, answer tokens with soft targets, all tokens) of a batch, as
    `answer_loss_parts` counts them, without running the model: the normaliser every micro
    batch's loss needs before any of them is computed."""
    answer = sum(len(ids) - start for ids, start in batch)
    soft = sum(len(segment[0]) - segment[1] for segment in batch if soft_targets and id(segment) in soft_targets)
    return answer, soft, sum(len(ids) for ids, _ in batch)


def micro_batches(batch: list[Segment], capacity: int | None, rows: int | None,
                  share_prefixes: bool = False) -> list[list[Segment]]:
    """The batch's examples in groups of at most `rows` packed rows (one group when None)."""
    if not rows or not batch:
        return [batch] if batch else []
    packed = pack_rows(batch, capacity, share_prefixes)
    return [[segment for row in packed[i:i + rows] for segment in row] for i in range(0, len(packed), rows)]


def step_loss(peft_model: Any, batch: list[Segment], pad_id: int, config: TrainConfig,
              soft_targets: Mapping[int, SoftTargets] | None = None, kl: Any = None, anchor: Any = None,
              backward: bool = False, bf16: bool = False) -> tuple[torch.Tensor, list[float]]:
    """This process's loss for one global batch, and the batch's (answer, soft, all, computed)
    token counts over every process. One process: the batch's mean answer loss plus the other terms.
    Data-parallel: this rank's share of the batch (learn/distributed.py), normalised by the
    whole batch's counts, so the gradients summed over ranks are the one-process gradient.
    With `backward`, each group of about `config.micro_batch_rows` rows (`fp32_micro_batch_rows`
    when that is None and `bf16` is not set; a group is repacked on
    its own) runs forward and backward in turn, the gradients adding up to the whole batch's
    up to summation order, and the loss comes back detached. `bf16`: autocast around the
    forward passes (backward runs outside it)."""
    world = distributed.world_size()
    local = distributed.shard(batch)  # the whole batch with one process
    counts = distributed.sums(*batch_counts(local, soft_targets))
    rows = config.micro_batch_rows if config.micro_batch_rows is not None else (None if bf16 else config.fp32_micro_batch_rows)
    groups = micro_batches(local, config.pack_length, rows if backward else None, config.share_prefixes)
    total = torch.zeros(())
    computed = 0  # positions this rank's groups ran, as each group's packing counts them

    def autocast() -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def add(term: torch.Tensor) -> None:
        nonlocal total
        if backward and term.requires_grad:
            term.backward()
            term = term.detach()
        total = total + term

    for group in groups:
        with autocast():
            parts = answer_loss_parts(peft_model, group, pad_id, config.pack_length, soft_targets, config.share_prefixes,
                                      bool(config.answer_gradients_only), not (config.compile_layers or config.gradient_checkpointing))
            computed += parts.computed_tokens
            loss = parts.answer_sum / max(counts[0], 1)
            if parts.soft_sum is not None:
                loss = loss + config.distill_weight * parts.soft_sum / counts[1]
        add(loss)
    if kl is not None:  # identical on every rank: each adds its 1/world share
        with autocast():
            term = config.kl_weight * kl() / world
        add(term)
    if anchor is not None:
        with autocast():
            term = config.ewc_weight * anchor() / world
        add(term)
    return total, [*counts, *distributed.sums(computed)]


def answer_only_loss(peft_model: Any, batch: list[tuple[list[int], int]], pad_id: int,
                     pack_length: int | None = None, soft_targets: Mapping[int, SoftTargets] | None = None,
                     soft_weight: float = 1.0) -> tuple[torch.Tensor, int, int]:
    """Mean cross-entropy over answer tokens, plus `soft_weight` times the mean soft
    cross-entropy to the teacher where it has targets."""
    parts = answer_loss_parts(peft_model, batch, pad_id, pack_length, soft_targets)
    loss = parts.answer_sum / max(parts.answer_tokens, 1)
    if parts.soft_sum is not None:
        loss = loss + soft_weight * parts.soft_sum / parts.soft_tokens
    return loss, parts.tokens, parts.answer_tokens


class AnchorKL:
    """KL(frozen || adapted) on the training anchors along the frozen model's own greedy
    continuations (learn/drift.py). A few rows are sampled per step; the frozen log-probs of
    all rows are computed once."""

    def __init__(self, lm: LanguageModel, peft_model: Any, rows_per_step: int = 8, continuation: int = 16,
                 seed: int = 0) -> None:
        self.rows = lm.memo(("training anchor rows", continuation),
                            lambda: continuation_rows(lm, TRAINING_CHAT, TRAINING_RAW, continuation))
        self.peft_model = peft_model
        self.pad = lm.tokenizer.pad_token_id
        self.rows_per_step = rows_per_step
        self.rng = random.Random(seed)
        with torch.no_grad(), peft_model.disable_adapter():
            self.base_log_probs = [self._log_probs([i]).detach() for i in range(len(self.rows))]

    def _log_probs(self, indices: list[int]) -> torch.Tensor:
        return continuation_log_probs(self.peft_model.get_base_model(), [self.rows[i] for i in indices], self.pad)

    def __call__(self) -> torch.Tensor:
        indices = self.rng.sample(range(len(self.rows)), min(self.rows_per_step, len(self.rows)))
        reference = torch.cat([self.base_log_probs[i] for i in indices])
        return kl_per_token(reference, self._log_probs(indices))


def anchor_texts(lm: LanguageModel) -> list[str]:
    """General text whose behaviour the module should keep (the training anchors)."""
    return [lm.format_chat(closed_book(p)) for p in TRAINING_CHAT] + list(TRAINING_RAW)


def trained_texts(examples: Sequence[TrainingExample], replay: Sequence[TrainingExample],
                  strategy: Strategy) -> list[dict[str, Any]]:
    """Every text `train_module` learns from under `strategy`, each tagged with its source.
    A version keeps this beside its adapter so what a module saw can be audited without
    re-deriving it from the strategy (the benchmark's held-out check reads it). Anchors are
    kept as plain prompts: inside a chat template a sentence runs into the markup."""
    def turns(items: Sequence[TrainingExample], source: str) -> list[dict[str, Any]]:
        # memory_ids: what forgetting a memory removes from this record (lifelong/unlearn.py)
        return [{"source": source, "text": t, "memory_ids": list(e.memory_ids)}
                for e in items for t in [*(m["content"] for m in e.prompt), e.answer]]

    anchors = [*TRAINING_CHAT, *TRAINING_RAW]
    return [*turns(examples, "example"), *(turns(replay, "replay") if strategy.replay else []),
            *({"source": "kl anchor", "text": t} for t in (anchors if strategy.kl else [])),
            *({"source": "ewc anchor", "text": t} for t in (anchors if strategy.ewc else []))]


def train_module(
    lm: LanguageModel,
    peft_model: Any,
    examples: Sequence[TrainingExample],
    strategy: Strategy,
    config: TrainConfig,
    replay: Sequence[TrainingExample] = (),
    progress: Any = None,
    memories: Mapping[int, Memory] | None = None,
    after_epoch: Callable[[int], bool] | None = None,
) -> TrainStats:
    """Train the adapter in place; returns what it cost. `memories` (id -> memory) are the
    teacher's notes for the `distill` component. `after_epoch(epochs_done)` runs after each
    epoch but the last, with the model in eval mode, to watch the module learn (benchmarks/
    epoch_curve.py); True stops training there. Its time is left out of the returned seconds."""
    bound_kernel_caches()  # before the process's first bf16 product, if nothing ran one yet
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    segments = [encode_example(lm, ex, config.max_length) for ex in examples]
    encoded = [e for e in segments if e is not None]
    soft: dict[int, SoftTargets] = {}
    if strategy.distill and memories:
        by_index = teacher_targets(lm, examples, segments, memories, config.max_length)
        soft = {id(segments[i]): targets for i, targets in by_index.items()}
    if examples and not encoded:
        raise InputError(f"none of the {len(examples)} training examples fits in max_length={config.max_length} tokens; raise max_length")
    replay_encoded = [e for e in (encode_example(lm, ex, config.max_length) for ex in replay) if e is not None] if strategy.replay else []
    kl = AnchorKL(lm, peft_model, seed=config.seed) if strategy.kl else None
    anchor = WeightAnchor(lm, peft_model, anchor_texts(lm)) if strategy.ewc else None
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    pad = lm.tokenizer.pad_token_id
    peft_model.train()
    causal_lm = peft_model.get_base_model()
    if config.gradient_checkpointing:
        causal_lm.activation_checkpointing_enable()  # non-reentrant checkpoints: frozen inputs need no grad
    steps = tokens = answer_tokens = computed_tokens = 0
    loss_value = float("nan")
    bf16 = use_bf16(config.bf16)
    start = time.perf_counter()
    epochs = [_batches(encoded, config.batch_size, rng) for _ in range(config.epochs)]  # every shuffle first, as before
    planned = sum(len(batches) for batches in epochs)
    epochs_run = 0
    watching = 0.0  # seconds in after_epoch: not training's cost
    schedule = scheduled_learning_rate(optimizer, config.learning_rate_schedule, planned)
    compile_layers = config.compile_layers and not config.gradient_checkpointing  # checkpointing re-enters the layers
    release_free_memory()  # what synthesis left free would sit under training's peak
    with large_allocations_returned(config.return_freed_memory) as returned, \
            training_attention(causal_lm, config.attention) as attention, \
            compiled_decoder_layers(causal_lm, compile_layers) as compiled, \
            recomputed_gated_activations(causal_lm, config.recompute_gated_activation and not compile_layers) as recomputed, \
            recast_frozen_weights(causal_lm, config.recast_frozen_weights and bf16 and not compile_layers):
        for number, batches in enumerate(epochs, start=1):
            for batch in batches:
                if replay_encoded:
                    batch = batch + rng.sample(replay_encoded, min(config.replay_per_batch, len(replay_encoded)))
                optimizer.zero_grad(set_to_none=True)
                loss, counts = step_loss(peft_model, batch, pad, config, soft, kl, anchor, backward=True, bf16=bf16)
                distributed.sum_gradients(params)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                steps += 1
                tokens += int(counts[2])
                answer_tokens += int(counts[0])
                computed_tokens += int(counts[3])
                loss_value = distributed.sums(float(loss.detach()))[0]
                if progress is not None:
                    progress(steps, planned, loss_value)
            epochs_run = number
            if number < len(epochs):  # after the last epoch training is over: nothing to decide
                asked = time.perf_counter()
                stop = _stop_after_epoch(peft_model, after_epoch, number)
                watching += time.perf_counter() - asked
                if stop:
                    break
    peft_model.eval()
    if config.gradient_checkpointing:
        causal_lm.activation_checkpointing_disable()
    release_free_memory()  # the activations' blocks, before the gate allocates its own
    return TrainStats(steps, tokens, answer_tokens, time.perf_counter() - start - watching, loss_value, "bf16" if bf16 else "fp32",
                      returned, compiled, attention, computed_tokens, recomputed, epochs_run)
