"""Sleep: compress memories not yet consolidated into a new LoRA module version.

select -> synthesise -> train -> gate -> save -> promote. The candidate is built in a
temporary folder and the active pointer only moves after the gate passes, so killing the
process at any point leaves the active version and the memory as they were.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lifelong.errors import InputError
from lifelong.evaluate.gate import GateMetrics, GatePolicy, judge
from lifelong.evaluate.probes import (
    acquisition_probes,
    answer_logprobs,
    answered_together,
    mean_gain,
    Probe,
    load_probes,
    record_retention_probes,
    retention_agreement,
    share_answered,
)
from lifelong.evaluate.recorded_answers import asked_with, load_answers, probe_key, save_answers
from lifelong.learn import distributed
from lifelong.learn.anchors import HELD_OUT_CHAT, HELD_OUT_RAW
from lifelong.learn.drift import continuation_kl, continuation_rows_with_text
from lifelong.learn.precision import use_bf16
from lifelong.learn.rehearsal import base_rehearsal
from lifelong.learn.strategies import Strategy, parse_strategy
from lifelong.learn.router import DEFAULT_RADIUS, ModuleKeys, Router, keyed_texts
from lifelong.learn.synthesis import (
    Distiller,
    SharedDistiller,
    MODEL_QUESTION_REQUEST,
    TOPIC_PROMPTS,
    TrainingExample,
    context_examples,
    data_hash,
    synthesise,
    whole_sentences,
)
from lifelong.learn.teacher import Teacher, TeacherConfig
from lifelong.learn.topics import topic_groups
from lifelong.learn.trainer import TrainConfig, attach_lora, train_module, trained_texts
from lifelong.memory.records import TRUST_LEVELS, Memory
from lifelong.memory.embedder import Embedder
from lifelong.model.adapter_loading import load_modules
from lifelong.model.language_model import GENERATION_BATCH_ROWS, LanguageModel, weight_sharing_copy
from lifelong.model.routed import RoutedLanguageModel
from lifelong.progress import StageClock
from lifelong.prompt import build_messages, closed_book
from lifelong.versions.serving import served_weights, tainted, valid_library
from lifelong.scoring import mentioned
from lifelong.versions import BASE_VERSION, Manifest, VersionRegistry
from lifelong.versions.layout import ADAPTER, RETENTION_PROBES, TRAINED_ON, TRAINING_DATA


CANDIDATE_ADAPTER = "default"  # the freshly trained adapter's name inside the candidate's PeftModel (PEFT's default)
QUESTION_TEMPERATURE = 0.8  # sampled questions: varied wording, still about the note (0.8 is a common sampling default)


@dataclass(frozen=True)
class SleepConfig:
    strategy: str = "routed+context"
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GatePolicy = field(default_factory=GatePolicy)
    distill: bool = True
    teacher: TeacherConfig | None = None
    # Evaluation questions that must never be trained on: a synthesised example whose prompt or
    # answer contains one is dropped (a model writing its own questions can hit a generic one,
    # "What is the full name of the author?", by chance).
    held_out_questions: tuple[str, ...] = ()
    embedder: Embedder | None = None  # router keys of a routed sleep (the mind's embedder)
    router_radius: float = DEFAULT_RADIUS
    # The least trusted memory the weights may learn (the mind's [training] min_trust). Weights
    # are the hardest layer to undo and the contradiction check misses about half of the false
    # statements it is shown (README, Poisoning), so untrusted memories are answered from, marked
    # as untrusted, but not trained on unless the mind says so.
    min_trust: str = "user"
    # Questions the model writes about each fact unit for distillation. 1 (greedy) is what every
    # published measurement used; more are sampled, trading sleep time for ways of asking.
    questions_per_memory: int = 1
    # Cloze and span questions also over content phrases (lower-case noun phrases such as
    # "normal force"), not only names and numbers: technical passages state few names, so their
    # sleeps had a handful of examples and their answers none. Off: not yet measured on TOFU.
    content_cloze: bool = False
    # Span questions about a sentence of a split document chunk (over names, numbers and content
    # phrases) answered with the whole sentence rather than the span: a passage's questions must
    # find their sentence among its others (on SQuAD the module answered with another sentence
    # of the right passage). On all 50 SQuAD single passages closed-book containment went from
    # 0.194 to 0.324 (memory: 0.364; README, Sleep v2 on SQuAD). Short notes are never split:
    # their examples are byte for byte what they were, so every TOFU result stands.
    recite: bool = True
    # Distractor notes beside the right one in each context-present row (1 to this many, drawn
    # per row; RAFT's recipe). Context rows were 40-55% of a sleep's training tokens in the
    # 10x10 sequential run, so fewer distractors is the first lever on a sleep's cost.
    context_distractors: int = 2
    # Rows with the memory itself among the distractors (RAFT's reading rows). False keeps only
    # the distractor-only rows; None, the default, trains them only where they can be served: a
    # routed module steps aside when its memory is quoted (learn/router.route_prompts), so for it
    # they teach a reading that never runs, and they are half of a sleep's trained tokens.
    # Without them a 100-fact TOFU sleep answered as many questions in 0.49x the tokens (README,
    # Fast sleep); an unrouted module answers with its notes quoted, so it keeps them.
    note_rows: bool | None = None
    # How many of the three topic prompts ("What do you know about X?", ...) each fact's
    # statement is trained under; fewer: fewer trained tokens a fact.
    statement_prompts: int = len(TOPIC_PROMPTS)
    # One module (and gated version) per topic among the new memories instead of one per sleep
    # (learn/topics.py): a forget then rebuilds only its topic's module, and every other topic
    # keeps its answers exactly (a whole-author forget kept 1.00 of the kept facts' score, one
    # module per sleep 0.625: README, Governance). None, the default: per topic wherever it can
    # run (see `trains_per_topic`), since a forget must not cost the facts it does not name.
    topic_modules: bool | None = None


class ModelDistiller:
    """The frozen model with a memory in its prompt, writing and answering questions about it.

    The first question per memory is the greedy one; `questions_per_memory` above 1 adds
    sampled ones (QUESTION_TEMPERATURE, seeded), for more ways of asking the same fact."""

    def __init__(self, lm: LanguageModel, questions_per_memory: int = 1, seed: int = 0) -> None:
        self.lm, self.questions_per_memory, self.seed = lm, questions_per_memory, seed

    def write_questions(self, memories: list[Memory]) -> list[list[str]]:
        prompts = [[{"role": "user", "content": f"Note: {m.text}\n\n{MODEL_QUESTION_REQUEST}"}] for m in memories]
        written = [[first] for first in self._generate(prompts, 32)]
        if self.questions_per_memory > 1:
            repeats = self.questions_per_memory - 1
            sampled = self._generate([p for p in prompts for _ in range(repeats)], 32, QUESTION_TEMPERATURE)
            for i, questions in enumerate(written):
                questions += sampled[i * repeats:(i + 1) * repeats]
        return [[text.splitlines()[0] for text in questions if text] for questions in written]

    def answer(self, pairs: list[tuple[str, Memory]], max_new_tokens: int = 48) -> list[str]:
        """Answers cut off by the token limit keep only their whole sentences (none: dropped),
        so the module never learns to stop mid-sentence."""
        answers = self._generate([build_messages(q, [m]) for q, m in pairs], max_new_tokens)
        return [whole_sentences(a) if len(self.lm.encode(a)) >= max_new_tokens - 1 else a for a in answers]

    def _generate(self, prompts: list[list[dict[str, str]]], max_new_tokens: int, temperature: float = 0.0) -> list[str]:
        """Answers, or "" for a prompt too long for the context window (that example is skipped)."""
        limit = self.lm.context_window - max_new_tokens
        fits = [len(self.lm.encode(self.lm.format_chat(p))) <= limit for p in prompts]
        answers = iter(self.lm.generate_batch([p for p, ok in zip(prompts, fits, strict=True) if ok], max_new_tokens=max_new_tokens,
                                              temperature=temperature, seed=self.seed))
        return [next(answers) if ok else "" for ok in fits]


@dataclass(frozen=True)
class SleepResult:
    manifest: Manifest | None  # by topic: the last version made
    activated: bool  # by topic: every version made was promoted
    message: str
    topics: tuple[SleepResult, ...] = ()  # a sleep by topic: each topic's own result, in order


def read_examples(path: Path) -> list[TrainingExample]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Versions written before training used the serving format hold a bare user turn: replay
    # them in the format the module is served in.
    return [TrainingExample(r["prompt"] if r["prompt"][0]["role"] == "system" else closed_book(r["prompt"][-1]["content"]),
                            r["answer"], tuple(r["memory_ids"]), r["kind"]) for r in rows]


def read_trained_on(folder: Path) -> list[str]:
    """The texts a version's module learned from (empty for versions that trained nothing)."""
    path = folder / TRAINED_ON
    if not path.is_file():
        return []
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def trains_per_topic(config: SleepConfig) -> bool:
    """Whether a sleep under `config` trains a module per topic. An explicit True or False is
    obeyed (and True is refused below where it cannot run); None, the default, means per topic
    where a topic module can live and be trained: a routed strategy (unrouted versions are one
    continued module), one process (topics do not run data-parallel yet) and an embedder to
    find the topics with."""
    if config.topic_modules is not None:
        return config.topic_modules
    return parse_strategy(config.strategy).routed and distributed.world_size() == 1 and config.embedder is not None


def trains_answer_gradients_only(train: TrainConfig, strategy: Strategy) -> bool:
    """Whether the sleep's LoRA weights take gradient from the answers' positions only: as
    configured, else for routed strategies. On 100 TOFU facts, SQuAD passages 1-15 and the
    10x10 sequential study a routed sleep answered as many questions either way, with
    training 1.26-1.4x faster (README, "Answer gradients only"); an unrouted module, which
    every input runs through, was not measured with it."""
    return train.answer_gradients_only if train.answer_gradients_only is not None else strategy.routed


def trains_note_rows(config: SleepConfig, strategy: Strategy) -> bool:
    """Whether a sleep under `config` trains rows quoting each memory among distractor notes:
    as set, or by default only for an unrouted module, the one kind that reads its own notes."""
    return config.note_rows if config.note_rows is not None else not strategy.routed


def run_sleep(
    mind_path: Path,
    base: LanguageModel,
    memories: list[Memory],
    config: SleepConfig,
    report: Callable[[str], None] = lambda _msg: None,
    progress: Any = None,
    foundation_for: Callable[[str], LanguageModel] | None = None,
) -> SleepResult:
    """`base` is the model the mind was created with (retention and KL are measured against
    it). `foundation_for(version_id)` gives the checkpoint a version builds on (the base, or
    the latest merge in its lineage); it is called once the lock is held, so a rollback or
    merge finishing just before cannot leave the module trained on the wrong weights."""
    strategy = parse_strategy(config.strategy)  # a bad name fails before any work
    if config.topic_modules and not strategy.routed:
        raise InputError(f"a module per topic needs a routed strategy (got {config.strategy!r}); add routed, e.g. routed+context, "
                         f"or sleep with --module-per-sleep (or set [training] modules = \"per-sleep\" in config.toml)")
    if config.topic_modules and distributed.world_size() > 1:
        raise InputError("a module per topic does not run data-parallel yet; run the sleep without torchrun, or with "
                         "--module-per-sleep (or set [training] modules = \"per-sleep\" in config.toml)")
    registry = VersionRegistry(mind_path)
    if not distributed.is_main():  # torchrun's other ranks: train rank 0's data, nothing else
        return _train_share(registry, base, config, strategy, foundation_for)
    with registry.exclusive("sleep"):
        registry.clean_incomplete()
        foundation = foundation_for(registry.active_id()) if foundation_for else base
        shared = [False]

        def share(plan: dict[str, Any] | None) -> None:
            shared[0] = True
            distributed.from_main(plan)

        try:
            if trains_per_topic(config):
                return _sleep_per_topic(registry, mind_path, base, foundation, memories, config, strategy, report, progress, share)
            return _sleep(registry, mind_path, base, foundation, memories, config, strategy, report, progress, share)
        finally:
            if not shared[0]:  # nothing to train, or a failure before training: release the other ranks
                distributed.from_main(None)


def _train_share(registry: VersionRegistry, base: LanguageModel, config: SleepConfig, strategy: Strategy,
                 foundation_for: Callable[[str], LanguageModel] | None) -> SleepResult:
    """A data-parallel rank other than 0: wait for rank 0's training data, train on this rank's
    share of every batch (gradients are summed across ranks inside train_module), and leave
    measuring, gating and committing to rank 0."""
    plan = distributed.from_main(None)
    if plan is None:
        return SleepResult(None, False, f"rank {distributed.rank()}: rank 0 had nothing to train")
    foundation = foundation_for(plan["foundation"]) if foundation_for else base
    adapter = plan["parent_adapter"]
    candidate = attach_lora(LanguageModel(weight_sharing_copy(foundation.model), base.tokenizer, base.name, base.needs_bos),
                            plan["train"], adapter_path=adapter)
    stats = train_module(foundation, candidate, plan["examples"], strategy, plan["train"], replay=plan["replay"],
                         memories={m.id: m for m in plan["new"]})
    return SleepResult(None, False, f"rank {distributed.rank()}: trained its share, {stats.tokens} tokens in {stats.seconds:.1f}s")


class Selection(NamedTuple):
    """What a sleep starts from: the active version, the routed library still valid under it,
    and the memories not yet learned, split by whether they may be trained on."""
    parent_id: str
    parent: Manifest | None  # also None where an unrouted parent learned a memory since forgotten
    current: dict[int, Memory]
    library: dict[str, list[int]]  # routed: each valid module's own memory ids
    consolidated: set[int]
    new: list[Memory]  # to learn now
    private: list[Memory]  # private data: recalled, never trained on
    below_trust: list[Memory]  # below the mind's [training] min_trust


def select_memories(registry: VersionRegistry, memories: list[Memory], config: SleepConfig, strategy: Strategy,
                    report: Callable[[str], None]) -> Selection:
    """Stage 1: the current memories no valid module of the active version has learned."""
    parent_id = registry.active_id()
    parent = registry.get(parent_id) if parent_id != BASE_VERSION else None
    current = {m.id: m for m in memories if m.current}
    if parent and not strategy.routed and parent.kind == "module" and tainted(parent, {m.id: m for m in memories}):
        report(f"{parent_id} learned memories since forgotten; training a fresh module on every current memory instead")
        parent = None  # never continue a module that learned a forgotten memory
    library = valid_library(registry, parent.modules if parent else [], current) if strategy.routed else {}
    if strategy.routed:
        consolidated = {i for own in library.values() for i in own}
    else:
        consolidated = set(parent.memory_ids) if parent else set()
    floor = TRUST_LEVELS.index(config.min_trust)
    unconsolidated = [m for m in memories if m.current and m.id not in consolidated]
    return Selection(
        parent_id, parent, current, library, consolidated,
        new=[m for m in unconsolidated if m.trainable and TRUST_LEVELS.index(m.trust) >= floor],
        private=[m for m in unconsolidated if m.no_train],
        below_trust=[m for m in unconsolidated if m.trainable and TRUST_LEVELS.index(m.trust) < floor],
    )


def report_kept_out(chosen: Selection, config: SleepConfig, report: Callable[[str], None]) -> None:
    """Say how many memories the policy kept out of training, and which setting lets them in."""
    if chosen.private:
        report(f"kept {len(chosen.private)} {_plural(len(chosen.private), 'memory', 'memories')} with private data out of "
               f"training (recalled, never trained on: see [privacy] in config.toml)")
    if chosen.below_trust:
        report(f"kept {len(chosen.below_trust)} {_plural(len(chosen.below_trust), 'memory', 'memories')} below "
               f"{config.min_trust!r} trust out of training (answered from, marked untrusted; set [training] min_trust in "
               f"config.toml to train on them)")


def _sleep_per_topic(registry: VersionRegistry, mind_path: Path, base: LanguageModel, foundation: LanguageModel,
                     memories: list[Memory], config: SleepConfig, strategy: Strategy, report: Callable[[str], None],
                     progress: Any, share: Callable[[dict[str, Any] | None], None]) -> SleepResult:
    """One gated version per topic among the new memories (learn/topics.py), each adding its
    module to the library in turn: a later forget then rebuilds only the forgotten memory's
    topic. A topic the gate refuses stays unlearned (kept for inspection); the next topics
    still run. The result's manifest is the last version made (refused or not); `activated`
    says whether every topic was promoted; a failure in a later topic leaves the earlier
    topics' versions committed."""
    chosen = select_memories(registry, memories, config, strategy, report)
    report_kept_out(chosen, config, report)
    if not chosen.new:
        return SleepResult(None, False, "nothing new to consolidate")
    if config.embedder is None:
        raise ValueError("a sleep by topic needs an embedder (SleepConfig.embedder)")
    groups = topic_groups(config.embedder.embed([m.text for m in chosen.new]))
    report(f"{len(chosen.new)} new {_plural(len(chosen.new), 'memory', 'memories')} in {len(groups)} "
           f"{_plural(len(groups), 'topic', 'topics')}: one module each")
    # Topics' distillation written a generation batch at a time, several topics at once
    # (SharedDistiller). Sampled questions (more than one per note) depend on the rows sampled
    # beside them, so those are written a topic at a time, as before, for the same data.
    ahead = GENERATION_BATCH_ROWS if config.questions_per_memory == 1 else 0
    distiller = (SharedDistiller(ModelDistiller(foundation, config.questions_per_memory, config.train.seed),
                                 [[chosen.new[i] for i in group] for group in groups], rows=ahead)
                 if config.distill else None)
    results = []
    for number, group in enumerate(groups, start=1):
        prefix = f"topic {number}/{len(groups)}: "
        results.append(_sleep(registry, mind_path, base, foundation, memories, config, strategy,
                              lambda message, prefix=prefix: report(prefix + message), progress, share,
                              topic={chosen.new[i].id for i in group}, distiller=distiller))
        report(prefix + results[-1].message)  # a refused topic says why before the next one starts
    made = [r for r in results if r.manifest is not None]
    message = "; ".join(f"topic {n}/{len(groups)}: {r.message}" for n, r in enumerate(results, start=1))
    return SleepResult(made[-1].manifest if made else None, bool(made) and all(r.activated for r in made), message,
                       topics=tuple(results))


def _sleep(registry: VersionRegistry, mind_path: Path, base: LanguageModel, foundation: LanguageModel,
           memories: list[Memory], config: SleepConfig, strategy: Strategy, report: Callable[[str], None],
           progress: Any, share: Callable[[dict[str, Any] | None], None] = lambda _plan: None,
           topic: set[int] | None = None, distiller: Distiller | None = None) -> SleepResult:
    """One version: `topic` (memory ids) restricts what it learns to those new memories;
    `distiller`, the sleep's shared one (by topic), else one of its own."""
    # 1. select: memories no valid module of the active version has learned
    clock = StageClock()
    chosen = select_memories(registry, memories, config, strategy, report)
    parent_id, parent, current, library, consolidated = chosen.parent_id, chosen.parent, chosen.current, chosen.library, chosen.consolidated
    if topic is None:
        report_kept_out(chosen, config, report)
    new = [m for m in chosen.new if topic is None or m.id in topic]
    if not new:
        return SleepResult(None, False, "nothing new to consolidate")
    old = [current[i] for i in sorted(consolidated) if i in current]
    superseded = sorted(set(parent.memory_ids if parent else ()) & {m.id for m in memories if not m.current})
    report(f"selected {len(new)} new {_plural(len(new), 'memory', 'memories')} ({len(old)} consolidated before"
           + (f", {len(superseded)} since superseded or forgotten)" if superseded else ")"))

    probes_path = mind_path / RETENTION_PROBES
    retention = load_probes(probes_path) if probes_path.is_file() else []
    if not retention:
        report("reading the base model's retention probes (recorded once per model, then cached)")
        retention = record_retention_probes(base, probes_path)
    clock.lap("select")

    # 2. build training data
    report("synthesising training data" + (" (with the teacher)" if config.teacher else ""))
    extra = Teacher(config.teacher).examples(new) if config.teacher else []
    if distiller is None and config.distill:
        distiller = ModelDistiller(foundation, config.questions_per_memory, config.train.seed)
    examples = synthesise(new, distiller, extra, content_cloze=config.content_cloze, recite=config.recite,
                          statement_prompts=config.statement_prompts)
    note_rows = strategy.context and trains_note_rows(config, strategy)
    if strategy.context:
        examples += context_examples(examples, new, distractors=config.context_distractors, seed=config.train.seed,
                                     note_rows=note_rows)
    if config.held_out_questions:
        kept = [e for e in examples if not mentioned(config.held_out_questions, [m["content"] for m in e.prompt] + [e.answer])]
        report(f"dropped {len(examples) - len(kept)} examples that contain a held-out question")
        examples = kept
    replay: list[TrainingExample] = []
    if strategy.replay:
        if not strategy.routed and parent:
            earlier = read_examples(registry.path(parent_id) / TRAINING_DATA)
            replay += [e for e in earlier if e.memory_ids and all(i in current for i in e.memory_ids)]
        replay += base_rehearsal(foundation)
    report(f"synthesised {len(examples)} examples ({len(replay)} for replay)")
    clock.lap("synthesis")

    # 3. train the candidate: a fresh module per sleep (or topic) when routed, else the active one continued
    parent_adapter = None
    if not strategy.routed and parent and parent.kind == "module" and not parent.modules:
        parent_adapter = registry.path(parent_id) / ADAPTER
        _check_same_shape(parent_id, parent_adapter, config.train)
    candidate_peft = attach_lora(  # on the foundation's own frozen weights: no second copy of the model
        LanguageModel(weight_sharing_copy(foundation.model), base.tokenizer, base.name, base.needs_bos),
        config.train,
        adapter_path=str(parent_adapter) if parent_adapter else None,
    )
    train = replace(config.train, bf16=use_bf16(config.train.bf16),  # decided once, so every rank computes alike
                    answer_gradients_only=trains_answer_gradients_only(config.train, strategy))
    share({"foundation": registry.active_id(), "parent_adapter": str(parent_adapter) if parent_adapter else None,
           "train": train, "examples": examples, "replay": replay, "new": new})
    ranks = distributed.world_size()
    report(f"training a LoRA module ({strategy.name}, {config.train.epochs} epochs, {len(examples)} examples"
           + (f", data-parallel on {ranks} processes)" if ranks > 1 else ")"))
    stats = train_module(foundation, candidate_peft, examples, strategy, train, replay=replay, progress=progress,
                         memories={m.id: m for m in new})
    if config.train.return_freed_memory and not stats.freed_memory_returned:
        report("return_freed_memory had no effect: this C library is not glibc (preload tcmalloc or jemalloc instead)")
    if config.train.compile_layers and not stats.compiled_layers:
        report("--compile had no effect: gradient checkpointing is on, or the model has no model.layers to compile")
    report(f"trained {stats.steps} steps, {stats.tokens} tokens in {stats.seconds:.1f}s; evaluating the candidate")
    clock.lap("training")

    new_id = registry.new_id()
    keys = _module_keys(config, new) if strategy.routed else None
    if keys is not None:
        candidate = _library_model(registry, foundation, list(library), config, extra=(candidate_peft, keys))
    else:
        candidate = LanguageModel(candidate_peft, base.tokenizer, base.name, base.needs_bos)
    parent_lm = parent_beside(candidate, parent, list(library), config) or version_model(
        registry, parent_id, foundation, config.embedder, config.router_radius, existing={m.id: m for m in memories})  # what serves now
    clock.lap("library")  # timed apart from measuring: the two together grew from 35 s to 141 s over ten sleeps

    # 4. measure
    new_probes = acquisition_probes(new)
    fingerprint = asked_with(candidate)
    recorded = recorded_parent_answers(registry, parent, memories, config.router_radius, fingerprint)
    gate_metrics, closed_book_answers, gate_seconds = measure_candidate(
        candidate, parent_lm, base, new, old, retention, new_probes, on_base=foundation is base, recorded=recorded)
    metrics = {**gate_metrics.to_dict(), "train_seconds": stats.seconds, "train_tokens": stats.tokens,
               "computed_tokens": stats.computed_tokens,  # train_tokens less the shared openings laid out once
               "tokens_per_second": stats.tokens_per_second, "final_loss": stats.final_loss, "examples": len(examples),
               "precision": stats.precision, "attention": stats.attention, "training_processes": ranks,
               **({"freed_memory_returned": stats.freed_memory_returned} if config.train.return_freed_memory else {}),
               **({"compiled_layers": stats.compiled_layers} if config.train.compile_layers else {})}
    if isinstance(candidate, RoutedLanguageModel):
        metrics.update(router_metrics(candidate, new_probes, CANDIDATE_ADAPTER, retention))
    clock.lap("gate")
    metrics["stage_seconds"] = clock.laps  # where the time went, up to the commit (README, cost)
    metrics["gate_seconds"] = gate_seconds  # and inside the gate

    # 5. judge
    verdict = judge(gate_metrics, config.gate)

    # 6. commit: the version folder is complete before the active pointer moves
    memory_ids = sorted(consolidated & set(current) | {m.id for m in new})

    def write(folder: Path) -> Manifest:
        candidate_peft.save_pretrained(folder / ADAPTER, selected_adapters=[CANDIDATE_ADAPTER])
        if keys is not None:
            keys.save(folder)
        save_answers(folder, closed_book_answers, fingerprint)
        kept = [*(e for e in replay if e.memory_ids), *examples]
        (folder / TRAINING_DATA).write_text("\n".join(json.dumps(e.to_dict()) for e in kept) + "\n", encoding="utf-8")
        trained = trained_texts(examples, replay, strategy)
        (folder / TRAINED_ON).write_text("".join(json.dumps(row) + "\n" for row in trained), encoding="utf-8")
        return Manifest(
            id=new_id, parent=parent_id, created_at=time.time(), kind="module",
            memory_ids=memory_ids, memory_hashes={str(i): current[i].content_hash for i in memory_ids},
            synthetic_data_hash=data_hash(examples),
            hyperparameters={"strategy": strategy.name, **config.train.to_dict(),
                             "answer_gradients_only": trains_answer_gradients_only(config.train, strategy), "gate": asdict(config.gate),
                             "context_distractors": config.context_distractors, "topic_modules": topic is not None,
                             **({"note_rows": False} if strategy.context and not note_rows else {}),
                             **({"statement_prompts": config.statement_prompts} if config.statement_prompts != len(TOPIC_PROMPTS) else {}),
                             **({"router_radius": config.router_radius} if strategy.routed else {})},
            metrics=metrics, verdict=verdict, base_model=base.name,
            data_sources=sorted({e.kind for e in examples}), superseded_ids=superseded,
            modules=[*library, new_id] if strategy.routed else [], own_memory_ids=sorted(m.id for m in new),
        )

    manifest = registry.create(write)
    if verdict.passed:
        registry.activate(manifest.id, "promoted")
        return SleepResult(manifest, True, f"{manifest.id} promoted")
    return SleepResult(manifest, False, f"{manifest.id} kept for inspection, not activated: " + "; ".join(verdict.reasons))


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _module_keys(config: SleepConfig, memories: list[Memory]) -> ModuleKeys:
    """The new module's router keys, each with the memory it comes from ("default" is the
    trained adapter's name inside the candidate's PeftModel)."""
    if config.embedder is None:
        raise ValueError("a routed sleep needs an embedder for its router keys (SleepConfig.embedder)")
    keyed = keyed_texts([m.text for m in memories], [m.id for m in memories])
    return ModuleKeys(CANDIDATE_ADAPTER, config.embedder.embed([text for text, _ in keyed]), np.array([i for _, i in keyed]))


def _library_model(registry: VersionRegistry, foundation: LanguageModel, library: list[str], config: SleepConfig,
                   extra: tuple[Any, ModuleKeys] | None = None) -> LanguageModel:
    """The foundation with the modules of `library` (and, for a candidate, the freshly trained
    one) side by side behind one router. Modules load when an input is first routed to them
    (RoutedLanguageModel.ensure_loaded); a served library opens its first one at once, for a
    PeftModel to hold the rest."""
    modules = [ModuleKeys.load(origin, registry.path(origin)) for origin in library]
    adapters = {origin: registry.path(origin) / ADAPTER for origin in library}
    if extra is not None:  # the candidate: its trained adapter is "default" in its PeftModel
        model, keys = extra
        modules.append(keys)
    elif library:
        model = with_modules(foundation, {library[0]: adapters[library[0]]})
    else:
        return foundation
    model.eval()
    router = Router(config.embedder, modules, config.router_radius)
    return RoutedLanguageModel(model, foundation.tokenizer, foundation.name, foundation.needs_bos, router,
                               unloaded={origin: path for origin, path in adapters.items() if origin not in model.peft_config})


def parent_beside(candidate: LanguageModel, parent: Manifest | None, library: Sequence[str],
                  config: SleepConfig) -> RoutedLanguageModel | None:
    """The parent as it serves now, computed on the candidate's own PeftModel, which already
    can hold every module of the parent's valid library under its name: the parent's router
    never sends an input to the candidate's new module, so each of its answers is the one
    `version_model` would give, and a module either of them loads serves both (opening the
    library twice per topic made the library stage grow with every module; README, "Opening
    a module library").
    None where the parent is not such a library (the base, a merge, one unrouted module)."""
    if not (isinstance(candidate, RoutedLanguageModel) and parent is not None and parent.kind == "module"
            and parent.modules and library):
        return None
    in_library = set(library)  # the candidate's router holds the library's keys, read once, and its own after them
    router = Router(config.embedder, [keys for keys in candidate.router.module_keys if keys.name in in_library], config.router_radius)
    # the candidate's modules not yet loaded are exactly this library's (its own is loaded)
    return RoutedLanguageModel(candidate.model, candidate.tokenizer, candidate.name, candidate.needs_bos, router,
                               unloaded=candidate.unloaded)


def _check_same_shape(parent_id: str, adapter: Path, train: Any) -> None:
    """A sleep continues the active module, so it keeps that module's rank and layers."""
    saved = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    layers = saved.get("layers_to_transform")
    count = len(layers) if isinstance(layers, list) else None
    if saved.get("r") != train.rank or count != train.trainable_layers:
        raise InputError(
            f"the active module {parent_id} has rank {saved.get('r')} and adapts {count or 'all'} layers; a sleep continues it, "
            f"so pass the same --layers (or merge it with `lifelong merge`, or roll back to base, to start a new shape)"
        )


class Measurement(NamedTuple):
    """What the gate read, and the candidate's own closed-book answers to every probe it was
    asked (new and earlier facts): the version records them so that the next gate, where this
    version is the parent, reads them instead of asking again; and the seconds each part took
    (the manifest's `gate_seconds`)."""
    metrics: GateMetrics
    closed_book: dict[Probe, bool | None]
    seconds: dict[str, float]  # wall seconds per part of the measurement, so a slow gate says where


def measure_candidate(candidate: LanguageModel, parent: LanguageModel, base: LanguageModel, new: list[Memory],
                      old: list[Memory], retention: list[Probe], new_probes: list[Probe] | None = None,
                      on_base: bool = False, recorded: Mapping[str, bool | None] | None = None) -> Measurement:
    """What the gate reads: the new facts closed-book (completed, and how likely their answers
    are) and with their memory in the prompt (candidate and parent), earlier facts, retention
    of the base's completions, and drift.

    `on_base`: the candidate is built on `base` itself (no merge below it). A routed library
    then runs the exact base weights on every input no module claims (model/routed.py), so
    those retention probes and drift anchors give the base's own answers and distributions:
    they count as kept and as zero drift without being run again, and only the claimed ones
    are measured (on 3-fact sleeps this was a third of the gate's time).

    `recorded`: the parent's closed-book answers recorded at its own gate, on the weights
    it serves now (evaluate/recorded_answers.py). Earlier facts found there are not asked of
    the parent again, and the candidate is asked only those its router sends elsewhere than
    the parent's does: the rest it answers with the parent's very weights."""
    clock = StageClock()
    new_probes = acquisition_probes(new) if new_probes is None else new_probes
    old_probes = acquisition_probes(old)
    notes = {m.id: m for m in new}
    recorded = recorded or {}
    keys = {p: probe_key(p) for p in old_probes}
    unknown = [p for p in old_probes if keys[p] not in recorded]
    same = same_weights(candidate, parent, [p.prompt for p in old_probes])
    differ = [p for p, shared in zip(old_probes, same, strict=True) if not shared]
    # Every generation of the gate in shared batches on the candidate's weights, which hold
    # the parent's too (model/routed.py: generate_together): about one model's decoding, not six.
    runner = candidate if isinstance(candidate, RoutedLanguageModel) else None
    old_asked, old_differ, new_closed, parent_closed, read, parent_read = answered_together(
        [(parent, unknown, None), (candidate, differ, None), (candidate, new_probes, None), (parent, new_probes, None),
         (candidate, new_probes, notes), (parent, new_probes, notes)], runner)
    old_parent = {**{p: recorded[keys[p]] for p in old_probes if keys[p] in recorded}, **dict(zip(unknown, old_asked, strict=True))}
    old_candidate = {**old_parent, **dict(zip(differ, old_differ, strict=True))}
    new_candidate = dict(zip(new_probes, new_closed, strict=True))
    acquisition_parent = share_answered(parent_closed)
    with_memory = share_answered(read) if new_probes else None  # read: None where the prompt with its note does not fit
    with_memory_parent = share_answered(parent_read) if new_probes else None
    clock.lap("answers")
    gain = mean_gain(answer_logprobs(candidate, new_probes), answer_logprobs(parent, new_probes))
    clock.lap("answer log-probs")
    retention_agreement = _retention_where_it_can_differ(candidate, retention, on_base)
    clock.lap("retention")
    kl_drift = kl_to_base(base, candidate, on_base)
    clock.lap("drift")
    metrics = GateMetrics(
        acquisition=share_answered(list(new_candidate.values())),
        acquisition_parent=acquisition_parent,
        acquisition_probes=len(new_probes),
        with_memory=with_memory,
        with_memory_parent=with_memory_parent,
        with_memory_probes=sum(r is not None for r in read),
        old_facts=share_answered([old_candidate[p] for p in old_probes]) if old_probes else None,
        old_facts_parent=share_answered([old_parent[p] for p in old_probes]) if old_probes else None,
        old_fact_probes=len(old_probes),
        acquisition_logprob_gain=gain,
        retention_agreement=retention_agreement,
        retention_probes=len(retention),
        kl_drift=kl_drift,
    )
    return Measurement(metrics, {**old_candidate, **new_candidate}, clock.laps)


def same_weights(candidate: LanguageModel, parent: LanguageModel, texts: Sequence[str]) -> list[bool]:
    """Which inputs the candidate answers with exactly the parent's weights: with both routed
    libraries, those the candidate's router sends where the parent's does, to one of the
    parent's modules or to none. The new module ("default" inside the candidate) is the only
    weights the parent lacks, and a module's adapter computes alike whatever else is loaded."""
    if not isinstance(candidate, RoutedLanguageModel) or not isinstance(parent, RoutedLanguageModel):
        return [False] * len(texts)
    return [mine == theirs and mine != CANDIDATE_ADAPTER
            for mine, theirs in zip(candidate.modules_for(texts), parent.modules_for(texts), strict=True)]


def recorded_parent_answers(registry: VersionRegistry, parent: Manifest | None, memories: Sequence[Memory],
                            radius: float, fingerprint: str) -> dict[str, bool | None]:
    """The parent's recorded closed-book answers, where it serves now exactly what its gate
    measured: every module of its library still valid, the same router radius, and (for one
    unrouted module) none of its memories forgotten. Otherwise nothing, and the gate asks."""
    if parent is None or parent.kind != "module":
        return {}
    if parent.modules:
        current = {m.id: m for m in memories if m.current}
        if list(valid_library(registry, parent.modules, current)) != list(parent.modules) \
                or parent.hyperparameters.get("router_radius") != radius:
            return {}
    elif tainted(parent, {m.id: m for m in memories}):
        return {}
    return load_answers(registry.path(parent.id), fingerprint)


def _claimed(candidate: LanguageModel, texts: Sequence[str], on_base: bool) -> list[bool]:
    """Which inputs may run other weights than the base's: all of them, unless `candidate` is
    a routed library on the base itself, whose unclaimed inputs run the base exactly."""
    if on_base and isinstance(candidate, RoutedLanguageModel):
        return [module is not None for module in candidate.modules_for(texts)]
    return [True] * len(texts)


def _retention_where_it_can_differ(candidate: LanguageModel, retention: list[Probe], on_base: bool) -> float:
    if not retention:
        return 1.0
    asked = [p for p, claimed in zip(retention, _claimed(candidate, [p.prompt for p in retention], on_base), strict=True) if claimed]
    kept = retention_agreement(candidate, asked) * len(asked) if asked else 0.0
    return (len(retention) - len(asked) + kept) / len(retention)


def router_metrics(candidate: RoutedLanguageModel, probes: list[Probe], module: str, retention: list[Probe]) -> dict[str, Any]:
    """How often the new module claims its own probes (recall) and general text (false routes)."""
    own = candidate.modules_for([p.prompt for p in probes])
    general = candidate.modules_for([p.prompt for p in retention])
    return {"router_recall": sum(m == module for m in own) / len(own) if own else None,
            "router_general_claimed": sum(m is not None for m in general) / len(general) if general else 0.0}


def kl_to_base(base: LanguageModel, model: LanguageModel, on_base: bool = False) -> float:
    """Mean KL(base || model) per token of the base's own continuations of the held-out
    anchors (0 for the base itself): how much of what the base would say has moved. With
    `on_base`, anchors a routed library leaves to the base weights count as zero, unrun."""
    if not any(_claimed(model, [*HELD_OUT_CHAT, *HELD_OUT_RAW], on_base)):
        return 0.0  # no anchor reaches a module: the base's continuations need not even be generated (3.5 s in a new process)
    pairs = base.memo(("held-out anchor rows", 16), lambda: continuation_rows_with_text(base, HELD_OUT_CHAT, HELD_OUT_RAW))
    claimed = [pair for pair, mine in zip(pairs, _claimed(model, [text for _, text in pairs], on_base), strict=True) if mine]
    if not claimed:
        return 0.0
    kl = continuation_kl(base, model, [row for row, _ in claimed], texts=[text for _, text in claimed])
    return kl * _continuation_tokens(claimed) / _continuation_tokens(pairs)


def _continuation_tokens(pairs: Sequence[tuple[tuple[list[int], int], str]]) -> int:
    return sum(len(ids) - start for (ids, start), _ in pairs)


def with_modules(foundation: LanguageModel, adapters: Mapping[str, Path]) -> Any:
    """A PeftModel holding every adapter, each under its name, on the foundation's weights
    (shared, not copied: merge into `foundation.with_own_weights()`, never into this)."""
    return load_modules(weight_sharing_copy(foundation.model), adapters)


def with_adapter(base: LanguageModel, adapter: Path | None) -> LanguageModel:
    """The base with a saved adapter applied, on a module tree of its own over the base's
    weights (shared, so the base stays pure as long as nothing merges into the result: a merge
    passes `base.with_own_weights()`)."""
    if adapter is None:
        return base
    from peft import PeftModel

    model = PeftModel.from_pretrained(weight_sharing_copy(base.model), str(adapter))
    return LanguageModel(model, base.tokenizer, base.name, base.needs_bos)


def version_model(registry: VersionRegistry, version_id: str, foundation: LanguageModel, embedder: Embedder | None,
                  radius: float | None = None, existing: Mapping[int, Memory] | None = None) -> LanguageModel:
    """The model a version serves, on `foundation` (the base, or the merge it builds on): the
    foundation itself, one adapter on every input, or a routed library of modules, as
    `versions.serving.served_weights` decides (with `existing`, only what may still serve;
    without it, the version as it was trained, for inspection and benchmarks)."""
    served = served_weights(registry, version_id, existing, radius)
    if served.adapter is not None:
        return with_adapter(foundation, served.adapter)
    if not served.routed:
        return foundation
    if embedder is None:
        raise ValueError(f"{version_id} is a routed module library; its router needs the mind's embedder")
    return _library_model(registry, foundation, list(served.library), SleepConfig(embedder=embedder, router_radius=served.radius))


