"""What each epoch of a sleep adds: per-epoch learning curves of a real sleep's topic modules,
one training recipe beside another, on the examples that sleep wrote.

Why: issue 16 lists "stopping when the held-out probes stop improving" and fewer, better
steps among the levers for a faster sleep; whether an epoch can be dropped, or a rate schedule
makes the last epochs count, is read off these curves. For each module version of MIND, every
recipe trains a fresh LoRA from the same seed on that version's training_data.jsonl (the sleep's
own examples and notes), and after every epoch asks the module, closed-book and greedy: the
topic's held-out acquisition probes (the gate's; phrasings synthesis never uses) and, with
--data, the TOFU dev question of each fact (the benchmark's scoring question). Recipes alternate
within each topic. Writes results/epoch_curve/<UTC timestamp>/results.json and curves.png.

    .venv/bin/python benchmarks/epoch_curve.py MIND [--recipes constant,linear] [--data ../shared/data] [--topics N]

MIND: a mind that slept at least once (e.g. one a `lifelong bench` run kept with --keep-minds).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, write_json

from lifelong import Mind
from lifelong.bench.data import BenchData
from lifelong.consolidate import read_examples
from lifelong.evaluate.probes import (
    Probe,
    acquisition_probes,
    answer_logprobs,
    answered,
)
from lifelong.learn.strategies import parse_strategy
from lifelong.learn.trainer import TrainConfig, attach_lora, train_module
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel, weight_sharing_copy
from lifelong.versions.layout import TRAINING_DATA

RECIPES: dict[str, dict[str, Any]] = {
    "constant": {},  # the default: 4 epochs at a constant 1e-3
    "linear": {"learning_rate_schedule": "linear"},
    "3-epochs": {"epochs": 3},
    "3-epochs-linear": {"epochs": 3, "learning_rate_schedule": "linear"},
    "lr-2e-3": {"learning_rate": 2e-3},  # at a constant rate epoch k of a run is exactly a k-epoch run: fewer, larger steps
    "last-15-layers": {"trainable_layers": 15},  # the backward pass stops halfway down SmolLM2-135M's 30 layers
    "last-15-layers-2e-3": {"trainable_layers": 15, "learning_rate": 2e-3},  # half the depth, larger steps to make up for it
    # Fewer trained tokens a fact, the lever issue 16's 2 s a fact needs (README: "What 2 s a fact
    # would take"): the same sleep's examples, some kinds left out (select_examples).
    "no-context": {"examples": "no-context"},
    "no-context-2e-3": {"examples": "no-context", "learning_rate": 2e-3},
    "lean": {"examples": "lean"},
    "lean-2e-3": {"examples": "lean", "learning_rate": 2e-3},
}


def select_examples(examples: list, which: str) -> list:
    """Which of a sleep's examples a recipe trains on, as `sleep --no-note-rows` and
    `--statement-prompts 1` would have written them. "no-context": without the rows that put
    the memory in the prompt among distractors (half of a sleep's trained tokens; a routed
    module steps aside when its memory is quoted); the distractor-only rows stay. "lean": also
    one statement row a memory (the first prompt's) instead of three."""
    if which not in ("all", "no-context", "lean"):
        raise ValueError(f"unknown example set {which!r}")
    if which == "all":
        return examples
    kept = [e for e in examples if e.kind != "context"]
    if which == "no-context":
        return kept
    stated: set[tuple[int, ...]] = set()
    lean = []
    for example in kept:
        if example.kind == "statement":
            if example.memory_ids in stated:
                continue
            stated.add(example.memory_ids)
        lean.append(example)
    return lean


def scores(lm: LanguageModel, probes: list[Probe], dev: list[Probe]) -> dict[str, Any]:
    """The module's closed-book answers now: which probes and dev questions it answers."""
    logprobs = [x for x in answer_logprobs(lm, probes) if x is not None]
    return {"probes": [bool(a) for a in answered(lm, probes)], "dev": [bool(a) for a in answered(lm, dev)] if dev else [],
            "probe_logprob": sum(logprobs) / len(logprobs) if logprobs else None}


def curve(base: LanguageModel, examples: list, memories: list[Memory], strategy: str, config: TrainConfig,
          dev: list[Probe]) -> dict[str, Any]:
    """Train one fresh module, scoring it after every epoch."""
    peft_model = attach_lora(LanguageModel(weight_sharing_copy(base.model), base.tokenizer, base.name, base.needs_bos), config)
    view = LanguageModel(peft_model, base.tokenizer, base.name, base.needs_bos)
    probes = acquisition_probes(memories)
    epochs: list[dict[str, Any]] = []

    def after(done: int) -> bool:
        epochs.append({"epoch": done, **scores(view, probes, dev)})
        return False

    stats = train_module(base, peft_model, examples, parse_strategy(strategy), config, after_epoch=after,
                         memories={m.id: m for m in memories})
    epochs.append({"epoch": stats.epochs, **scores(view, probes, dev)})
    return {"epochs": epochs, "train_seconds": stats.seconds, "train_tokens": stats.tokens, "final_loss": stats.final_loss,
            "precision": stats.precision}


def dev_questions(memories: list[Memory], data: Path | None) -> list[Probe]:
    """Each fact's TOFU dev question with the key span scored (facts matched by their text)."""
    if data is None:
        return []
    by_answer = {qa.answer: qa for qa in BenchData(data).all_facts()}
    return [Probe(by_answer[m.text].question, by_answer[m.text].key, m.id) for m in memories if m.text in by_answer]


def totals(topics: list[dict[str, Any]], recipe: str) -> list[dict[str, Any]]:
    """Probes and dev questions answered after each epoch, summed over the topics."""
    rows = []
    for epoch in range(max(len(t["recipes"][recipe]["epochs"]) for t in topics)):
        at = [t["recipes"][recipe]["epochs"][epoch] for t in topics if epoch < len(t["recipes"][recipe]["epochs"])]
        rows.append({"epoch": epoch + 1, "probes": sum(sum(a["probes"]) for a in at), "of_probes": sum(len(a["probes"]) for a in at),
                     "dev": sum(sum(a["dev"]) for a in at), "of_dev": sum(len(a["dev"]) for a in at)})
    return rows


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for recipe, rows in results["totals"].items():
        epochs = [r["epoch"] for r in rows]
        axes[0].plot(epochs, [r["probes"] / r["of_probes"] for r in rows], marker="o", label=recipe)
        if rows[0]["of_dev"]:
            axes[1].plot(epochs, [r["dev"] / r["of_dev"] for r in rows], marker="o", label=recipe)
    for axis, title in zip(axes, ("held-out acquisition probes answered", "TOFU dev questions answered"), strict=True):
        axis.set_title(title)
        axis.set_xlabel("epochs trained")
        axis.set_ylim(0, 1)
        axis.legend()
    figure.suptitle(f"each topic module of {results['topics_count']} topics, closed-book, after each epoch")
    figure.tight_layout()
    figure.savefig(out / "curves.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mind", type=Path)
    parser.add_argument("--recipes", default="constant,linear", help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--data", type=Path, default=None, help="the benchmark data folder, for the TOFU dev questions")
    parser.add_argument("--topics", type=int, default=None, help="the first N module versions only (default: all)")
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    if args.topics is not None and args.topics < 1:
        raise SystemExit(f"--topics must be at least 1 (got {args.topics}); leave it out for every topic")
    with Mind.open(args.mind) as mind:
        versions = [v for v in mind.versions.list() if v.kind == "module" and (mind.versions.path(v.id) / TRAINING_DATA).is_file()]
        if not versions:
            raise SystemExit(f"{args.mind} has no module version with its training data; sleep it first (`lifelong sleep --mind {args.mind}`)")
        versions = versions[: args.topics]
        base = mind.base_model
        memories = {m.id: m for m in mind.memories()}
        machine, out = machine_info(), results_dir("epoch_curve")
        topics = []
        for number, version in enumerate(versions, start=1):
            own = [memories[i] for i in version.own_memory_ids if i in memories]
            examples = [e for e in read_examples(mind.versions.path(version.id) / TRAINING_DATA) if set(e.memory_ids) <= set(version.own_memory_ids)]
            dev = dev_questions(own, args.data)
            topic = {"version": version.id, "facts": len(own), "examples": len(examples), "dev_questions": len(dev), "recipes": {}}
            for recipe in recipes:
                print(f"topic {number}/{len(versions)} ({version.id}, {len(own)} facts): {recipe}", flush=True)
                settings = dict(RECIPES[recipe])
                chosen = select_examples(examples, settings.pop("examples", "all"))
                config = replace(TrainConfig(), **settings)
                topic["recipes"][recipe] = curve(base, chosen, own, version.hyperparameters["strategy"], config, dev)
                topic["recipes"][recipe]["examples"] = len(chosen)
                print(json.dumps([{k: (sum(v) if isinstance(v, list) else v) for k, v in e.items()}
                                  for e in topic["recipes"][recipe]["epochs"]]), flush=True)
            topics.append(topic)
            results = {"study": "epoch_curve", "mind": str(args.mind), "machine": machine, "recipes": {r: RECIPES[r] for r in recipes},
                       "topics_count": len(topics), "topics": topics, "totals": {r: totals(topics, r) for r in recipes}}
            write_json(out / "results.json", results)  # as each topic finishes
    plot(results, out)
    print_table("epoch_curve", ["recipe", "epoch", "probes", "dev", "train s"],
                [[r, row["epoch"], f"{row['probes']}/{row['of_probes']}", f"{row['dev']}/{row['of_dev']}",
                  sum(t["recipes"][r]["train_seconds"] for t in topics)] for r in recipes for row in results["totals"][r]])
    print(out)


if __name__ == "__main__":
    main()
