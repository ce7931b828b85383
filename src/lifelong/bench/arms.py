"""The arms every study compares, built the same way for every study.

base: the frozen model. memory: retrieval into the prompt. naive fine-tune: what a user
writes by hand with peft (a LoRA on the raw text, plain next-token loss, fp32). lifelong:
`sleep` with a strategy, its candidate module evaluated whatever the gate decided (the
verdict is reported beside it). lifelong + memory: that module with retrieval on top.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.bench.data import leaked_questions
from lifelong.consolidate import SleepConfig, read_trained_on
from lifelong.versions.layout import ADAPTER
from lifelong.learn.trainer import TrainConfig
from lifelong.memory.records import Memory, NewMemory
from lifelong.mind import Mind
from lifelong.model.language_model import LanguageModel
from lifelong.bench.lines import report_to_console, training_progress
from lifelong.bench.naive import RawTextFineTune

Retrieve = Callable[[str], list[Memory]]
RETRIEVED = 3  # memories put into the prompt, as `ask` does by default


@dataclass
class Arm:
    name: str
    lm: LanguageModel
    retrieve: Retrieve | None = None
    info: dict[str, Any] = field(default_factory=dict)
    training_texts: list[str] = field(default_factory=list)  # every prompt and answer it trained on


def check_held_out(arms: Sequence[Arm], questions: Sequence[str]) -> dict[str, Any]:
    """Stop the run if any scoring question is inside any arm's training data."""
    for arm in arms:
        leaked = leaked_questions(list(questions), arm.training_texts)
        if leaked:
            raise RuntimeError(f"{arm.name} trained on {len(leaked)} scoring questions, e.g. {leaked[0]!r}: the benchmark is void")
    return {"questions": len(questions), "training_texts_checked": {a.name: len(a.training_texts) for a in arms}, "leaked": 0}


def gate_summary(info: dict[str, Any]) -> str:
    """How the gate judged a lifelong arm's module, for report tables ("-" for other arms)."""
    if "gate_passed" in info:
        return f"{info['gate_passed']}/{info['sleeps']} promoted"
    if "passed" not in info:
        return "-"
    return "promoted" if info["passed"] else "refused: " + "; ".join(info["reasons"])


def with_memory(arm: Arm, mind: Mind) -> Arm:
    """The lifelong arm's module with retrieval on top (its gate verdict travels with it)."""
    return Arm("lifelong + memory", arm.lm, retriever(mind), info={k: v for k, v in arm.info.items() if k in ("passed", "reasons")})


def make_mind(path: Path, base: LanguageModel, embedder: Any, records: Sequence[NewMemory]) -> Mind:
    mind = Mind.init(path, model=base.name, embedder=embedder, language_model=base)
    if records:
        mind.learn_records(list(records))
    return mind


def retriever(mind: Mind, k: int = RETRIEVED) -> Retrieve:
    return lambda question: [h.memory for h in mind.recall(question, k, include_superseded=False)]


def contexts(arm: Arm, questions: Sequence[str]) -> list[list[Memory]] | None:
    return [arm.retrieve(q) for q in questions] if arm.retrieve else None


def sleep_once(mind: Mind, strategy: str, train: TrainConfig, label: str, held_out: Sequence[str],
               synthesis: Mapping[str, Any] | None = None, may_find_nothing: bool = False) -> dict[str, Any]:
    """One sleep, told the scoring questions so synthesis drops any example containing one;
    its candidate adapter (promoted or not), verdict, cost and training texts. A sleep with
    nothing to consolidate is an error, unless `may_find_nothing` (a rebuild after a forget that
    took down only modules of forgotten facts): then no adapter and an info without a version."""
    start = time.perf_counter()
    config = SleepConfig(strategy=strategy, train=train, held_out_questions=tuple(held_out), **(synthesis or {}))
    result = mind.sleep(config, report=report_to_console(label),
                        progress=training_progress(label))
    seconds = time.perf_counter() - start
    manifest = result.manifest
    if manifest is None:
        if may_find_nothing:
            return {"adapter": None, "training_texts": [],
                    "info": {"version": None, "activated": False, "passed": True, "reasons": [result.message],
                             "gate_metrics": {}, "sleep_seconds": seconds, "strategy": strategy}}
        raise RuntimeError(f"{label}: the sleep had nothing to consolidate ({result.message})")
    folder = mind.versions.path(manifest.id)
    made = [t.manifest for t in result.topics if t.manifest is not None] or [manifest]  # a sleep by topic made several
    metrics = dict(manifest.metrics)
    if len(made) > 1:  # the cost is every topic's; the gate's numbers stay the last version's (each topic's below)
        for key in ("train_seconds", "train_tokens"):
            metrics[key] = sum(m.metrics.get(key, 0) for m in made)
        # versions made before computed_tokens was recorded computed every token
        metrics["computed_tokens"] = sum(m.metrics.get("computed_tokens", m.metrics.get("train_tokens", 0)) for m in made)
        metrics["tokens_per_second"] = metrics["train_tokens"] / metrics["train_seconds"] if metrics["train_seconds"] else 0.0
        metrics["stage_seconds"] = {stage: sum(m.metrics.get("stage_seconds", {}).get(stage, 0.0) for m in made)
                                    for stage in manifest.metrics.get("stage_seconds", {})}
    info = {"version": manifest.id, "activated": result.activated, "passed": all(m.verdict.passed for m in made),
            "reasons": [r for m in made for r in m.verdict.reasons], "gate_metrics": metrics, "sleep_seconds": seconds,
            "strategy": strategy}
    if result.topics:
        info["topics"] = [{"version": m.id, "memories": len(m.own_memory_ids), "passed": m.verdict.passed,
                           "reasons": m.verdict.reasons, "gate_metrics": m.metrics} for m in made]
    return {
        "adapter": folder / ADAPTER,
        "info": info,
        "training_texts": [t for m in made for t in read_trained_on(mind.versions.path(m.id))],  # what the sleep recorded training on
    }


def lifelong_arm(root: Path, name: str, base: LanguageModel, embedder: Any, records: Sequence[NewMemory],
                 strategy: str, train: TrainConfig, held_out: Sequence[str], reuse: bool = False,
                 synthesis: Mapping[str, Any] | None = None) -> tuple[Arm, Mind]:
    """A fresh mind that learns `records` and sleeps once; with `reuse`, the module an earlier
    run kept in the same folder (`--keep-minds`) if it learned exactly these records."""
    path = root / name.replace(" ", "-").replace("+", "-")
    if reuse and path.exists():
        kept = reused_arm(path, name, base, embedder, records, strategy)
        if kept is not None:
            return kept
    if path.exists():
        shutil.rmtree(path)
    mind = make_mind(path, base, embedder, records)
    slept = sleep_once(mind, strategy, train, name, held_out, synthesis)
    lm = mind.version_model(slept["info"]["version"])  # the candidate, promoted or not
    return Arm(name, lm, info=slept["info"], training_texts=slept["training_texts"]), mind


def naive_arm(base: LanguageModel, texts: Sequence[str], train: TrainConfig, name: str = "naive fine-tune") -> Arm:
    tuner = RawTextFineTune(base, train)
    stats = tuner.train(texts, name)
    return Arm(name, tuner.lm, info={"train": stats}, training_texts=list(texts))


def reused_arm(path: Path, name: str, base: LanguageModel, embedder: Any, records: Sequence[NewMemory],
               strategy: str) -> tuple[Arm, Mind] | None:
    """The kept mind's latest module, when its memories are these records and it was trained
    with this strategy (else None, and the arm is trained again)."""
    mind = Mind.open(path, embedder=embedder, language_model=base)
    modules = [m for m in mind.versions.list() if m.kind == "module" and m.hyperparameters.get("strategy") == strategy]
    if not modules or sorted(m.text for m in mind.memories()) != sorted(r.text for r in records):
        mind.close()
        return None
    manifest = modules[-1]
    folder = mind.versions.path(manifest.id)
    info = {"version": manifest.id, "activated": mind.versions.active_id() == manifest.id, "passed": manifest.verdict.passed,
            "reasons": manifest.verdict.reasons, "gate_metrics": manifest.metrics, "sleep_seconds": None,
            "strategy": strategy, "reused_from": str(path)}
    return Arm(name, mind.version_model(manifest.id), info=info, training_texts=read_trained_on(folder)), mind
