"""Does sleep put facts into the weights, and what does it cost in forgetting and time?

On the default model, the first N TOFU answer sentences with a key span (fictitious authors:
no model can know them) are learned as memories; their questions are asked closed-book.

Arms, in one run, on the same data, prompts and greedy decoding:
  base      the frozen model, closed-book
  memory    retrieval into the prompt (the in-context ceiling)
  <strategy> one sleep with each anti-forgetting strategy (naive, replay, kl, ewc, default)
Each arm reports acquisition (containment of the key span, ROUGE-L recall of the answer) and
retention: cloze accuracy on known facts the base model gets right, 4-way multiple choice on
world facts, and KL to the base on the anchor prompts.

--sequential K: K sleeps over K batches with the default strategy; the accuracy matrix
(row i: after sleep i, column j: batch j), average accuracy and backward transfer.
--cost: our trainer against a naive PEFT loop (fp32, full-vocabulary loss, no packing) on the
same synthesised examples.

Expected full run on 2 CPU cores: 40 facts, four strategies (no ewc), five sleeps and cost took 6,749 s;
ewc adds more (291 s at 15 facts; not timed at 40).
"""

from __future__ import annotations

import argparse
import copy
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, machine_info, print_table, results_dir, write_json

from lifelong.consolidate import SleepConfig, _with_adapter, kl_to_base, ADAPTER
from lifelong.evaluate.knowledge import QA, answer_closed_book, cloze_correct, load_qa, multiple_choice_accuracy, read_jsonl
from lifelong.learn.strategies import parse_strategy
from lifelong.learn.trainer import TrainConfig, attach_lora, encode_example, train_module
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind
from lifelong.model.language_model import LanguageModel
from lifelong.progress import console, status

STUDY = "sleep"
DEFAULT_STRATEGY = SleepConfig().strategy


def first_with_key(qas: list[QA], n: int) -> list[QA]:
    """The first n questions whose answer has a key span the question does not give away."""
    return [qa for qa in qas if qa.key != qa.answer][:n]


def new_mind(root: Path, name: str, lm: LanguageModel, embedder: Any, qas: list[QA]) -> Mind:
    mind = Mind.init(root / name, model="smollm2-135m", embedder=embedder, language_model=lm)
    mind.learn_records([NewMemory(qa.answer, "tofu", "user", "default", "fact", None) for qa in qas])
    return mind


def training_progress(label: str):  # noqa: ANN201 - callback
    last = [0.0]

    def report(step: int, total: int, loss: float) -> None:
        now = time.perf_counter()
        if step == total or now - last[0] > 15:
            last[0] = now
            console().print(f"  [dim]{label}: step {step}/{total}, loss {loss:.3f}[/dim]")

    return report


class Evaluator:
    """Acquisition and retention of one model, measured identically for every arm."""

    def __init__(self, base: LanguageModel, known_rows: list[dict], mcq_rows: list[dict]) -> None:
        self.base = base
        with status(f"finding the known facts the base model completes correctly (of {len(known_rows)})"):
            correct = cloze_correct(base, known_rows)
        self.known = [row for row, ok in zip(known_rows, correct, strict=True) if ok]
        self.mcq = mcq_rows

    def acquisition(self, lm: LanguageModel, qas: list[QA], context: list | None = None) -> dict[str, Any]:
        score = answer_closed_book(lm, qas, context)
        return {**score.to_dict(), "predictions": score.predictions}

    def retention(self, lm: LanguageModel) -> dict[str, float]:
        known = cloze_correct(lm, self.known)
        return {
            "known_facts": sum(known) / len(known) if known else 0.0,
            "world_mcq": multiple_choice_accuracy(lm, self.mcq),
            "kl_drift": kl_to_base(self.base, lm),
        }


def run_arm(source: Mind, root: Path, name: str, strategy: str, args: argparse.Namespace,
            base: LanguageModel, embedder: Any) -> tuple[Mind, Any, float]:
    """Copy the mind's memories into a fresh mind and sleep once with `strategy`."""
    shutil.copytree(source.path, root / name, ignore=shutil.ignore_patterns("versions", "active", "audit.jsonl", "*.jsonl"))
    mind = Mind.open(root / name, embedder=embedder, language_model=base)
    config = SleepConfig(strategy=strategy, train=train_config(args))
    start = time.perf_counter()
    result = mind.sleep(config, report=lambda m: console().print(f"  [dim]{name}: {m}[/dim]"), progress=training_progress(name))
    return mind, result, time.perf_counter() - start


def train_config(args: argparse.Namespace) -> TrainConfig:
    config = TrainConfig(epochs=args.epochs, seed=args.seed)
    return replace(config, ewc_weight=args.ewc_weight) if args.ewc_weight is not None else config


def candidate_model(mind: Mind, version_id: str) -> LanguageModel:
    return _with_adapter(mind.base_model, mind.versions.path(version_id) / ADAPTER)


def strategies_study(args: argparse.Namespace, base: LanguageModel, embedder: Any, evaluator: Evaluator,
                     qas: list[QA], root: Path) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    source = new_mind(root, "source", base, embedder, qas)
    with status("arm base: closed-book"):
        arms["base"] = {**evaluator.acquisition(base, qas), **evaluator.retention(base)}
    with status("arm memory: retrieval into the prompt"):
        context = [[h.memory for h in source.recall(qa.question, 3, include_superseded=False)] for qa in qas]
        # Retrieval changes the prompt of the questions, not the weights: retention is the base's.
        arms["memory"] = {**evaluator.acquisition(base, qas, context), **{k: arms["base"][k] for k in ("known_facts", "world_mcq", "kl_drift")}}
    for strategy in args.strategies:
        name = strategy if strategy != "default" else f"default ({DEFAULT_STRATEGY})"
        mind, result, seconds = run_arm(source, root, f"arm-{strategy.replace('+', '-')}", DEFAULT_STRATEGY if strategy == "default" else strategy, args, base, embedder)
        manifest = result.manifest
        with status(f"arm {name}: evaluating"):
            lm = candidate_model(mind, manifest.id)
            arms[name] = {
                **evaluator.acquisition(lm, qas),
                **evaluator.retention(lm),
                "verdict": {"passed": manifest.verdict.passed, "reasons": manifest.verdict.reasons},
                "gate_metrics": manifest.metrics,
                "sleep_seconds": seconds,
            }
        console().print(f"  {name}: containment {arms[name]['containment']:.3f}, known {arms[name]['known_facts']:.3f}, "
                        f"mcq {arms[name]['world_mcq']:.3f}, KL {arms[name]['kl_drift']:.3f}, {seconds:.0f}s")
    return arms


def sequential_study(args: argparse.Namespace, base: LanguageModel, embedder: Any, qas: list[QA], root: Path) -> dict[str, Any]:
    k = args.sequential
    size = len(qas) // k
    batches = [qas[i * size : (i + 1) * size] for i in range(k)]
    mind = Mind.init(root / "sequential", model="smollm2-135m", embedder=embedder, language_model=base)
    def row(lm: LanguageModel) -> list[float]:
        return [answer_closed_book(lm, batch).containment for batch in batches]

    matrix, verdicts, seconds = [], [], []
    with status("sequential: base row"):
        base_row = row(base)
    for i, batch in enumerate(batches):
        mind.learn_records([NewMemory(qa.answer, "tofu", "user", "default", "fact", None) for qa in batch])
        config = SleepConfig(strategy=DEFAULT_STRATEGY, train=train_config(args))
        start = time.perf_counter()
        result = mind.sleep(config, report=lambda m: console().print(f"  [dim]sleep {i + 1}: {m}[/dim]"),
                            progress=training_progress(f"sleep {i + 1}"))
        seconds.append(time.perf_counter() - start)
        verdicts.append({"version": result.manifest.id if result.manifest else None, "activated": result.activated,
                         "reasons": result.manifest.verdict.reasons if result.manifest else [],
                         "gate_metrics": result.manifest.metrics if result.manifest else {}})
        with status(f"sequential: evaluating after sleep {i + 1}"):
            matrix.append(row(mind.language_model))
        console().print(f"  after sleep {i + 1} ({'promoted' if result.activated else 'refused'}): " + " ".join(f"{v:.2f}" for v in matrix[-1]))
    final = matrix[-1]
    bwt = sum(final[j] - matrix[j][j] for j in range(k - 1)) / (k - 1) if k > 1 else 0.0
    forgetting = sum(max(matrix[i][j] for i in range(j, k - 1)) - final[j] for j in range(k - 1)) / (k - 1) if k > 1 else 0.0
    return {"batches": k, "batch_size": size, "base_row": base_row, "matrix": matrix, "average_accuracy": sum(final) / k,
            "backward_transfer": bwt, "forgetting": forgetting, "verdicts": verdicts, "sleep_seconds": seconds,
            "strategy": DEFAULT_STRATEGY}


def naive_peft_loop(base: LanguageModel, examples: list, config: TrainConfig) -> dict[str, float]:
    """What a user writes by hand with peft: fp32, labels over the full vocabulary, each batch
    padded to its longest example, no packing."""
    import torch

    lm = LanguageModel(copy.deepcopy(base.model), base.tokenizer, base.name, base.needs_bos)
    model = attach_lora(lm, config)
    encoded = [e for e in (encode_example(base, ex, config.max_length) for ex in examples) if e is not None]
    rng = random.Random(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    pad = base.tokenizer.pad_token_id
    tokens = steps = 0
    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = encoded[:]
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
            optimizer.step()
            tokens += int(attention.sum())
            steps += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": tokens, "steps": steps, "tokens_per_second": tokens / seconds}


def cost_study(args: argparse.Namespace, base: LanguageModel, embedder: Any, qas: list[QA], root: Path) -> dict[str, Any]:
    from lifelong.consolidate import ModelDistiller
    from lifelong.learn.synthesis import synthesise

    mind = new_mind(root, "cost", base, embedder, qas)
    examples = synthesise(mind.memories(), ModelDistiller(base))
    config = TrainConfig(epochs=args.cost_epochs, seed=args.seed)
    rows = {}
    for name, train_config, strategy in (
        ("lifelong trainer, naive objective", config, "naive"),
        (f"lifelong trainer, {DEFAULT_STRATEGY}", config, DEFAULT_STRATEGY),
    ):
        lm = LanguageModel(copy.deepcopy(base.model), base.tokenizer, base.name, base.needs_bos)
        model = attach_lora(lm, train_config)
        with status(f"cost: {name}"):
            stats = train_module(base, model, examples, parse_strategy(strategy), train_config)
        rows[name] = {"seconds": stats.seconds, "tokens": stats.tokens, "steps": stats.steps, "tokens_per_second": stats.tokens_per_second}
    with status("cost: naive PEFT loop (fp32, full-vocabulary loss, no packing)"):
        rows["naive PEFT loop"] = naive_peft_loop(base, examples, replace(config, bf16=False))
    return {"facts": len(qas), "examples": len(examples), "epochs": args.cost_epochs, "rows": rows}


def plot(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = results.get("arms")
    if arms:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for name, arm in arms.items():
            ax.scatter(arm["known_facts"], arm["containment"], s=60)
            ax.annotate(name, (arm["known_facts"], arm["containment"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("retention: known facts still completed correctly")
        ax.set_ylabel("acquisition: closed-book containment on new facts")
        ax.set_title("One sleep per strategy: acquisition vs retention")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "acquisition_vs_retention.png", dpi=120)
        plt.close(fig)
    sequential = results.get("sequential")
    if sequential:
        import numpy as np

        matrix = np.array(sequential["matrix"])
        fig, ax = plt.subplots(figsize=(5, 4.2))
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="white" if matrix[i, j] < 0.6 else "black", fontsize=8)
        ax.set_xlabel("batch j (closed-book containment)")
        ax.set_ylabel("after sleep i")
        ax.set_xticks(range(matrix.shape[1]), [str(j + 1) for j in range(matrix.shape[1])])
        ax.set_yticks(range(matrix.shape[0]), [str(i + 1) for i in range(matrix.shape[0])])
        ax.set_title(f"Sequential sleeps: BWT {sequential['backward_transfer']:+.3f}")
        fig.colorbar(image)
        fig.tight_layout()
        fig.savefig(out / "sequential_matrix.png", dpi=120)
        plt.close(fig)


def report(results: dict[str, Any]) -> str:
    """The Markdown report: what ran, on what, and every table."""
    machine = results["machine"]
    lines = [
        f"# Sleep study, {machine['utc_time']}",
        "",
        f"Model {results['model']}; {results['facts']} TOFU facts (the first with a key span); {results['epochs']} epochs; "
        f"seed {results['seed']}; default strategy `{results['default_strategy']}`; data {results['data']}; "
        f"{machine['cpu_count']} CPUs ({machine['processor']}), torch {machine['torch']}; wall time {results['wall_seconds']:.0f} s.",
        f"Command: `python benchmarks/sleep_study.py {' '.join(machine['argv'][1:])}`",
        "",
    ]
    if "arms" in results:
        lines += [f"## One sleep per strategy (retention on {results['known_facts_kept']} known facts the base model completes correctly)", "",
                  "| arm | containment | ROUGE-L recall | known facts | world MCQ | KL to base | gate |", "|---|---|---|---|---|---|---|"]
        for name, arm in results["arms"].items():
            gate = ("pass" if arm["verdict"]["passed"] else "refused: " + "; ".join(arm["verdict"]["reasons"])) if "verdict" in arm else "-"
            lines.append(f"| {name} | {arm['containment']:.3f} | {arm['rouge_l_recall']:.3f} | {arm['known_facts']:.3f} | "
                         f"{arm['world_mcq']:.3f} | {arm['kl_drift']:.3f} | {gate} |")
        lines.append("")
    if "sequential" in results:
        s = results["sequential"]
        lines += [f"## Sequential: {s['batches']} sleeps of {s['batch_size']} facts (`{s['strategy']}`)", "",
                  "| after sleep | " + " | ".join(f"batch {j + 1}" for j in range(s["batches"])) + " | gate |",
                  "|---|" + "---|" * (s["batches"] + 1),
                  "| base | " + " | ".join(f"{v:.2f}" for v in s["base_row"]) + " | |"]
        for i, row in enumerate(s["matrix"]):
            verdict = s["verdicts"][i]
            lines.append(f"| {i + 1} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {'promoted' if verdict['activated'] else 'refused: ' + '; '.join(verdict['reasons'])} |")
        lines += ["", f"Average accuracy after the last sleep {s['average_accuracy']:.3f}; backward transfer {s['backward_transfer']:+.3f}; "
                  f"forgetting {s['forgetting']:.3f}. (SEAL, Zweiger et al. 2025, reports BWT of about -0.19 for sequential self-edits on Qwen2.5-7B.)", ""]
    if "cost" in results:
        c = results["cost"]
        lines += [f"## Cost: {c['examples']} examples synthesised from the first {c.get('facts', results['facts'])} facts, {c['epochs']} epoch(s)", "",
                  "| trainer | seconds | tokens | tokens/s |", "|---|---|---|---|"]
        for name, row in c["rows"].items():
            lines.append(f"| {name} | {row['seconds']:.1f} | {row['tokens']:,} | {row['tokens_per_second']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", type=int, default=40)
    parser.add_argument("--strategies", default="naive,replay,kl,ewc,default", help="comma-separated; empty to skip")
    parser.add_argument("--sequential", type=int, default=5, help="number of sleeps; 0 to skip")
    parser.add_argument("--cost", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--cost-epochs", type=int, default=1)
    parser.add_argument("--cost-facts", type=int, default=15, help="facts whose synthesised data the three trainers are timed on")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--ewc-weight", type=float, default=None, help=f"default {TrainConfig().ewc_weight:g}")
    parser.add_argument("--known", type=int, default=200, help="known facts screened (the base's correct ones are kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--report", type=Path, help="only rewrite report.md and the plots of an earlier results folder")
    args = parser.parse_args()
    if args.report:
        import json

        earlier = json.loads((args.report / "results.json").read_text())
        plot(args.report, earlier)
        (args.report / "report.md").write_text(report(earlier), encoding="utf-8")
        return 0
    args.strategies = [s for s in args.strategies.split(",") if s]

    from lifelong.memory.embedder import MiniLMEmbedder
    from lifelong.model.loader import load_model

    started = time.perf_counter()
    out = results_dir(STUDY)
    qas = first_with_key(load_qa(args.data / "tofu_authors_dev.jsonl"), args.facts)
    base = load_model("smollm2-135m")
    embedder = MiniLMEmbedder()
    results: dict[str, Any] = {
        "model": base.name, "facts": len(qas), "epochs": args.epochs, "seed": args.seed, "train_config": train_config(args).to_dict(),
        "default_strategy": DEFAULT_STRATEGY, "data": str(args.data), "machine": machine_info(),
        "questions": [{"question": qa.question, "key": qa.key} for qa in qas],
    }
    with tempfile.TemporaryDirectory(prefix="lifelong-sleep-study-") as tmp:
        root = Path(tmp)
        if args.sequential:  # first: the quickest section to show whether sleeps get promoted
            results["sequential"] = sequential_study(args, base, embedder, qas, root)
            write_json(out / "results.json", {**results, "partial": True})  # a later section's failure loses nothing
        if args.strategies:
            evaluator = Evaluator(base, read_jsonl(args.data / "known_facts_dev.jsonl")[: args.known],
                                  read_jsonl(args.data / "world_facts_mcq.jsonl"))
            results["known_facts_kept"] = len(evaluator.known)
            results["arms"] = strategies_study(args, base, embedder, evaluator, qas, root)
            write_json(out / "results.json", {**results, "partial": True})
        if args.cost:
            results["cost"] = cost_study(args, base, embedder, qas[: args.cost_facts], root)
    results["wall_seconds"] = time.perf_counter() - started
    write_json(out / "results.json", results)
    plot(out, results)
    (out / "report.md").write_text(report(results), encoding="utf-8")
    if "arms" in results:
        print_table(f"One sleep on {len(qas)} TOFU facts ({args.epochs} epochs, seed {args.seed})",
                    ["arm", "containment", "ROUGE-L", "known facts", "world MCQ", "KL", "gate"],
                    [[n, a["containment"], a["rouge_l_recall"], a["known_facts"], a["world_mcq"], a["kl_drift"],
                      ("pass" if a["verdict"]["passed"] else "refused") if "verdict" in a else "-"] for n, a in results["arms"].items()])
    if "sequential" in results:
        s = results["sequential"]
        print_table(f"Sequential: {s['batches']} sleeps of {s['batch_size']} facts; avg {s['average_accuracy']:.3f}, BWT {s['backward_transfer']:+.3f}",
                    ["after sleep", *[f"batch {j + 1}" for j in range(s["batches"])]],
                    [[str(i + 1), *r] for i, r in enumerate(s["matrix"])])
    if "cost" in results:
        print_table(f"Cost on {results['cost']['examples']} examples, {results['cost']['epochs']} epoch(s)",
                    ["trainer", "seconds", "tokens", "tokens/s"],
                    [[n, r["seconds"], r["tokens"], r["tokens_per_second"]] for n, r in results["cost"]["rows"].items()])
    console().print(f"results in {out} ({results['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
