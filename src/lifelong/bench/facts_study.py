"""acquisition-facts and retention: learn TOFU facts with every arm, then ask what each
arm now knows about them and what it still knows about everything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelong.bench.arms import check_held_out, gate_summary
from lifelong.bench.context import Bench
from lifelong.bench.output import markdown_table
from lifelong.bench.verdict import losses
from lifelong.model.routed import RoutedLanguageModel
from lifelong.progress import status


def held_out_check(bench: Bench) -> dict[str, Any]:
    """No fact question inside any arm's training data (the run stops if one is)."""
    return check_held_out(list(bench.fact_arms().values()), [qa.question for qa in bench.facts()])


def run_acquisition(bench: Bench) -> dict[str, Any]:
    arms = bench.fact_arms()
    results = {"facts": len(bench.facts()), "held_out": held_out_check(bench), "arms": {}}
    for name, arm in arms.items():
        score = bench.fact_acquisition(name)
        results["arms"][name] = {**score, "info": arm.info}
    results["questions"] = [{"question": qa.question, "key": qa.key} for qa in bench.facts()]
    return results


def report_acquisition(results: dict[str, Any]) -> list[str]:
    rows = [[name, a["containment"], a["rouge_l_recall"], a["token_f1"], gate_summary(a["info"]),
             a["info"].get("sleep_seconds") or a["info"].get("train", {}).get("seconds")] for name, a in results["arms"].items()]
    return [f"{results['facts']} TOFU facts (fictitious authors), one question each, asked closed-book "
            f"(memory arms: with the 3 retrieved memories in the prompt). Scoring questions found in training data: "
            f"{results['held_out']['leaked']}.", "",
            *markdown_table(["arm", "containment", "ROUGE-L recall", "token F1 (key)", "gate", "train/sleep s"], rows),
            *losses(results["arms"], {"containment": True, "rouge_l_recall": True, "token_f1": True})]


def run_retention(bench: Bench) -> dict[str, Any]:
    trained_here = not bench.fact_arms_ready()
    suite = bench.retention()
    held_out = held_out_check(bench)
    suite.leave_out_trained([text for arm in bench.fact_arms().values() for text in arm.training_texts])
    results: dict[str, Any] = {"facts": len(bench.facts()), "sizes": suite.sizes(), "held_out": held_out,
                               "excluded": suite.excluded, "arms_trained_here": trained_here, "arms": {}}
    for name, arm in bench.fact_arms().items():
        with status(f"retention: measuring {name}"):
            measured = suite.measure(arm.lm, arm.retrieve)
        results["arms"][name] = {**measured, "acquisition": bench.fact_acquisition(name)["containment"], "info": arm.info}
        if isinstance(arm.lm, RoutedLanguageModel) and arm.retrieve is None:
            results.setdefault("router", {})[name] = router_quality(arm.lm, [qa.question for qa in bench.facts()],
                                                                    suite.general_inputs())
    return results


def router_quality(lm: RoutedLanguageModel, own: list[str], general: list[str]) -> dict[str, Any]:
    """The router on phrasings it never saw: the fact questions (which should reach a module)
    and every retention input (which should reach the base weights)."""
    claimed_own = sum(m is not None for m in lm.modules_for(own))
    claimed_general = sum(m is not None for m in lm.modules_for(general))
    claimed = claimed_own + claimed_general
    return {"recall": claimed_own / len(own) if own else None, "precision": claimed_own / claimed if claimed else None,
            "general_claimed": claimed_general, "general_inputs": len(general), "own_inputs": len(own)}


def report_retention(results: dict[str, Any]) -> list[str]:
    sizes = results["sizes"]
    trained = sum(e["because"] == "in training data" for e in results["excluded"])
    anchored = len(results["excluded"]) - trained
    rows = [[name, a["known_facts"], a["world_mcq"], a["authors_mcq"], a["perplexity"], a["kl_drift"], a["acquisition"]]
            for name, a in results["arms"].items()]
    return [f"Before (base) and after learning {results['facts']} TOFU facts with each arm. Known facts: the "
            f"{sizes['known_facts_kept']} of the first {sizes['known_facts_screened']} cloze facts the base completes "
            f"correctly; world MCQ {sizes['world_mcq']} and real-authors MCQ {sizes['authors_mcq']} questions (4-way, by "
            f"length-normalised likelihood; memory arms with retrieved notes in the prompt); perplexity on "
            f"{sizes['held_out_texts']} held-out Wikipedia passages; KL per token to the base along its continuations of "
            f"the held-out anchor prompts. Memory arms share their weights' cloze, perplexity and KL. Left out of every "
            f"arm, and listed in results.json: {anchored} item(s) that share their answer and a content word with a "
            f"rehearsal or training-anchor prompt (what the anti-forgetting objectives train on), and {trained} found "
            f"inside some arm's training data.", "",
            *([] if results.get("arms_trained_here", True) else
              ["The wall time leaves out training the arms: acquisition-facts trained them earlier in the same run.", ""]),
            *markdown_table(["arm", "known facts kept", "world MCQ", "authors MCQ", "perplexity", "KL to base", "acquisition"], rows),
            *losses(results["arms"], {"known_facts": True, "world_mcq": True, "authors_mcq": True, "perplexity": False,
                                      "kl_drift": False}),
            *router_lines(results.get("router", {}))]


def router_lines(router: dict[str, Any]) -> list[str]:
    if not router:
        return []
    rows = [[name, r["recall"], r["precision"], f"{r['general_claimed']}/{r['general_inputs']}"] for name, r in router.items()]
    return ["", "Router on held-out phrasings: recall = fact questions sent to a module; precision = share of claimed "
            "inputs that were fact questions; general inputs (known-fact cloze, both MCQ sets, held-out text) claimed:", "",
            *markdown_table(["arm", "router recall", "router precision", "general inputs claimed"], rows)]


def plot_retention(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, arm in results["arms"].items():
        ax.scatter(arm["known_facts"], arm["acquisition"], s=60)
        ax.annotate(name, (arm["known_facts"], arm["acquisition"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("retention: known facts still completed correctly")
    ax.set_ylabel("acquisition: containment on the new facts")
    ax.set_title(f"{results['facts']} TOFU facts: acquisition vs retention per arm")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "acquisition_vs_retention.png", dpi=120)
    plt.close(fig)


def plot_acquisition(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["arms"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.4
    for offset, metric in ((-width / 2, "containment"), (width / 2, "rouge_l_recall")):
        ax.bar([i + offset for i in range(len(names))], [results["arms"][n][metric] for n in names], width, label=metric)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"acquisition-facts: {results['facts']} TOFU facts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "acquisition.png", dpi=120)
    plt.close(fig)
