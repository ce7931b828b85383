"""One benchmark run's shared state: the model, the data, the settings, and the arms trained
on the fact set (acquisition-facts and retention evaluate the same trained arms)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from lifelong.bench.arms import (
    Arm,
    contexts,
    lifelong_arm,
    make_mind,
    naive_arm,
    retriever,
    with_memory,
)
from lifelong.bench.checkpoint import Checkpoint
from lifelong.bench.data import BenchData
from lifelong.bench.measure import RetentionSuite, acquisition
from lifelong.consolidate import SleepConfig
from lifelong.evaluate.knowledge import QA
from lifelong.learn.strategies import parse_strategy
from lifelong.learn.synthesis import TOPIC_PROMPTS
from lifelong.learn.trainer import TrainConfig
from lifelong.memory.records import NewMemory
from lifelong.model.language_model import LanguageModel
from lifelong.progress import status

DEFAULT_STRATEGY = SleepConfig().strategy
T = TypeVar("T")


# "implications" runs both of its units; the -passage / -extra names run one (each is ~1-2 h at 50 passages).
SQUAD_MODES = ("many", "single", "implications", "implications-passage", "implications-extra")


# The SleepConfig fields a benchmark run passes to every lifelong sleep (same names in BenchSettings),
# each with the value every run had before the knob existed: a run at that value keeps the identity
# it had then, so its checkpoints stay resumable, and a run at any other value (a later default
# included) never resumes one of them.
# (topic_modules is not about synthesis, but it reaches every lifelong sleep the same way)
STUDY_KNOBS = {"forget_unit": "first", "attention": None, "learning_rate": TrainConfig().learning_rate,
               "trainable_layers": TrainConfig().trainable_layers, "batch_size": TrainConfig().batch_size,
               "answer_gradients_only": False}  # the same rule: a study design's value before the knob existed
SYNTHESIS_KNOBS = {"questions_per_memory": 1, "content_cloze": False, "recite": False, "context_distractors": 2, "topic_modules": False,
                   "note_rows": True, "statement_prompts": 3}


FORGET_UNITS = ("author", "first")


@dataclass(frozen=True)
class BenchSettings:
    """Sizes of a full run; `quick()` gives the few-minute run CI uses."""

    facts: int = 100
    passages: int = 50
    implication_passages: int = 50
    squad_modes: tuple[str, ...] = ("many", "single", "implications")  # implications = both of its units
    sleeps: int = 10
    batch_facts: int = 10
    cost_facts: int = 15
    known: int = 500
    citation_questions: int = 300  # citations: every TOFU question
    governance_facts: int = 40  # governance: facts learned, slept on ...
    forget_facts: int = 10  # ... and forgotten
    # "author": the forgotten facts are all the study learned about one author (TOFU's forget
    # sets are whole authors; the kept facts are about others); "first": the first forget_facts
    # facts, whose author keeps other learned facts (every run before the knob)
    forget_unit: str = "author"
    canaries: int = 100
    poison_statements: int = 50
    poison_sleep_facts: int = 10  # user facts beside the poisoned memories, so their sleep trains something
    injections: int = 30
    strategies: tuple[str, ...] = (DEFAULT_STRATEGY,)
    epochs: int = TrainConfig().epochs
    questions_per_memory: int = SleepConfig().questions_per_memory
    content_cloze: bool = SleepConfig().content_cloze
    recite: bool = SleepConfig().recite
    context_distractors: int = SleepConfig().context_distractors
    note_rows: bool | None = SleepConfig().note_rows  # None: the product's default (only for unrouted strategies)
    statement_prompts: int = SleepConfig().statement_prompts
    # True: a module per topic in every lifelong sleep; False: one per sleep (every run before
    # the knob); None: the product's default (per topic where the sleep's strategy is routed)
    topic_modules: bool | None = None
    attention: str | None = None  # the training loop's attention kernel (TrainConfig.attention); None: the trainer's default
    learning_rate: float = TrainConfig().learning_rate  # every trained arm's AdamW rate, the naive baseline's included
    trainable_layers: int | None = TrainConfig().trainable_layers  # LoRA on the last N decoder layers of every trained arm; None: all
    batch_size: int = TrainConfig().batch_size  # new examples per optimizer step of every trained arm (replay in proportion)
    answer_gradients_only: bool | None = TrainConfig().answer_gradients_only  # None: the product's default (routed sleeps: answer positions only)
    seed: int = 0
    model: str = "smollm2-135m"

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        sizes = dict(facts=6, passages=2, implication_passages=2, sleeps=2, batch_facts=3, cost_facts=3, known=20, citation_questions=6,
                     governance_facts=4, forget_facts=1, canaries=5, poison_statements=3, poison_sleep_facts=2, injections=3,
                     epochs=1, model="tiny")
        return cls(**{**sizes, **overrides})

    def __post_init__(self) -> None:
        from lifelong.errors import InputError

        if not self.strategies:
            raise InputError("--strategies is empty; name at least one, e.g. kl+replay")
        if not self.squad_modes:
            raise InputError(f"--squad-modes is empty; use {', '.join(SQUAD_MODES)}")
        for strategy in self.strategies:
            try:
                parse_strategy(strategy)  # a bad name fails before any model loads
            except InputError as exc:
                raise InputError(f"--strategies: {exc}") from exc

        for name in ("facts", "passages", "implication_passages", "sleeps", "batch_facts", "cost_facts", "known", "citation_questions",
                     "governance_facts", "forget_facts", "canaries", "poison_statements", "poison_sleep_facts", "injections", "epochs",
                     "batch_size", "questions_per_memory", "context_distractors", "statement_prompts"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.statement_prompts > len(TOPIC_PROMPTS):
            raise InputError(f"--statement-prompts is at most {len(TOPIC_PROMPTS)}, the topic prompts there are (got {self.statement_prompts})")
        if self.trainable_layers is not None and self.trainable_layers < 1:
            raise InputError(f"--layers must be at least 1 (got {self.trainable_layers}); leave it out to adapt every layer")
        if not 0 < self.learning_rate < 1:
            raise InputError(f"--learning-rate must be between 0 and 1 (got {self.learning_rate}); the default is {TrainConfig().learning_rate}")
        if self.forget_unit not in FORGET_UNITS:
            raise InputError(f"--forget-unit is {self.forget_unit!r}; use one of {', '.join(FORGET_UNITS)}")
        if self.forget_facts >= self.governance_facts:
            raise InputError(f"forget_facts ({self.forget_facts}) must be below governance_facts ({self.governance_facts}): some facts must be kept")
        if self.topic_modules and not all(parse_strategy(s).routed for s in self.strategies):
            raise InputError("--topic-modules needs routed strategies only (a module per topic lives in a routed library); "
                             f"got --strategies {','.join(self.strategies)}")
        unknown = set(self.squad_modes) - set(SQUAD_MODES)
        if unknown:
            raise InputError(f"--squad-modes has {', '.join(sorted(unknown))}; use {', '.join(SQUAD_MODES)}")

    def train(self) -> TrainConfig:
        config = TrainConfig(epochs=self.epochs, seed=self.seed, learning_rate=self.learning_rate, trainable_layers=self.trainable_layers,
                             **({"attention": self.attention} if self.attention else {}))
        if self.batch_size != config.batch_size:
            config = config.with_batch_size(self.batch_size)
        if self.answer_gradients_only is not None:
            config = replace(config, answer_gradients_only=self.answer_gradients_only)
        if self.model == "tiny":  # the tiny model's 512-token window and byte tokenizer
            config = replace(config, rank=4, max_length=400, pack_length=400)
        return config

    def synthesis(self) -> dict[str, Any]:
        """The SleepConfig fields every lifelong sleep of the run takes from these settings."""
        return {knob: getattr(self, knob) for knob in SYNTHESIS_KNOBS}

    def to_dict(self) -> dict[str, Any]:
        """The run's identity (a checkpoint resumes only under equal settings). A knob at the
        value runs had before it existed is left out, so their checkpoints stay resumable."""
        settings = asdict(self)
        for knob, before in {**SYNTHESIS_KNOBS, **STUDY_KNOBS}.items():
            if settings[knob] == before:
                del settings[knob]
        train = self.train().to_dict()
        for knob, before in (("micro_batch_rows", None), ("fp32_micro_batch_rows", 1), ("gradient_checkpointing", False),
                             ("return_freed_memory", False), ("compile_layers", False), ("attention", None),
                             ("learning_rate_schedule", "constant"), ("answer_gradients_only", False)):
            if train[knob] == before:  # the same gradient either way; runs before the knob keep their identity
                del train[knob]
        return {**settings, "train_config": train}


def fact_record(qa: QA) -> NewMemory:
    return NewMemory(qa.answer, "tofu", "user", "default", "fact", None)


@dataclass
class Bench:
    base: LanguageModel
    embedder: Any
    data: BenchData
    settings: BenchSettings
    root: Path  # scratch space for the minds the arms train in
    checkpoint: Checkpoint | None = None  # the running study's finished units, for --resume
    reuse_minds: bool = False  # lifelong fact arms come from modules a --keep-minds run left in root
    keep_minds: bool = False  # root outlives the run (--keep-minds): studies leave their minds in it
    _fact_arms: dict[str, Arm] | None = None
    _fact_scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    _retention: RetentionSuite | None = None

    def unit(self, key: str, compute: Callable[[], T]) -> T:
        """A resumable piece of the running study (computed directly without a checkpoint)."""
        return self.checkpoint.unit(key, compute) if self.checkpoint else compute()

    def facts(self) -> list[QA]:
        return self.data.facts(self.settings.facts)

    def fact_arms_ready(self) -> bool:
        """Whether an earlier study of this run already trained the fact arms."""
        return self._fact_arms is not None

    def fact_arms(self) -> dict[str, Arm]:
        """base, memory, naive fine-tune, lifelong per strategy, lifelong + memory: trained once."""
        if self._fact_arms is None:
            qas = self.facts()
            records = [fact_record(qa) for qa in qas]
            source = make_mind(self.root / "facts-memory", self.base, self.embedder, records)
            arms = {"base": Arm("base", self.base), "memory": Arm("memory", self.base, retriever(source))}
            with status(f"naive fine-tune on {len(qas)} fact sentences"):
                arms["naive fine-tune"] = naive_arm(self.base, [qa.answer for qa in qas], self.settings.train())
            for strategy in self.settings.strategies:
                name = f"lifelong ({strategy})"
                arm, mind = lifelong_arm(self.root, f"facts {name}", self.base, self.embedder, records, strategy,
                                         self.settings.train(), self.scoring_questions(), reuse=self.reuse_minds,
                                         synthesis=self.settings.synthesis())
                arm.name = name
                arms[name] = arm
                if strategy == self.settings.strategies[0]:
                    arms["lifelong + memory"] = with_memory(arm, mind)
            self._fact_arms = arms
        return self._fact_arms

    def scoring_questions(self) -> list[str]:
        """Every question the fact studies ask: the facts' and the retention sets'."""
        return ([qa.question for qa in self.facts()] + [r["prompt"] for r in self.data.known(self.settings.known)]
                + [r["question"] for r in self.data.world_mcq() + self.data.authors_mcq()])

    def fact_acquisition(self, name: str) -> dict[str, Any]:
        if name not in self._fact_scores:
            arm, qas = self.fact_arms()[name], self.facts()
            with status(f"acquisition-facts: asking {name} {len(qas)} questions"):
                self._fact_scores[name] = acquisition(arm.lm, qas, contexts(arm, [qa.question for qa in qas]))
        return self._fact_scores[name]

    def retention(self) -> RetentionSuite:
        if self._retention is None:
            self._retention = RetentionSuite(self.base, self.data.known(self.settings.known), self.data.world_mcq(),
                                             self.data.authors_mcq(), self.data.held_out_text())
        return self._retention
