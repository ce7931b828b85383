"""sequential: K sleeps over K batches of new facts. Row i of an arm's accuracy matrix is
its containment on every batch after learning batch i; from the matrix come average
accuracy, backward transfer (BWT) and forgetting, as continual-learning papers report them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelong.bench.arms import (
    Arm,
    check_held_out,
    gate_summary,
    make_mind,
    retriever,
    sleep_once,
)
from lifelong.bench.context import Bench, fact_record
from lifelong.bench.measure import acquisition
from lifelong.bench.naive import RawTextFineTune
from lifelong.bench.output import markdown_table
from lifelong.bench.verdict import losses
from lifelong.progress import console, status
from lifelong.scoring import contains_answer

SEAL_BWT = -0.19  # Zweiger et al. 2025, sequential self-edits on Qwen2.5-7B (reported, approximate)
ARMS = ("memory", "naive fine-tune", "lifelong", "lifelong candidate", "lifelong + memory")


def transfer(matrix: list[list[float]]) -> dict[str, float]:
    """Average final accuracy, BWT = mean_j (R[K,j] - R[j,j]) and forgetting = mean_j (max_i<K R[i,j] - R[K,j]), j < K."""
    k = len(matrix)
    final = matrix[-1]
    if k < 2:
        return {"average_accuracy": sum(final) / k, "backward_transfer": 0.0, "forgetting": 0.0}
    bwt = sum(final[j] - matrix[j][j] for j in range(k - 1)) / (k - 1)
    forgetting = sum(max(matrix[i][j] for i in range(j, k - 1)) - final[j] for j in range(k - 1)) / (k - 1)
    return {"average_accuracy": sum(final) / k, "backward_transfer": bwt, "forgetting": forgetting}


def run(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    k, size = s.sleeps, s.batch_facts
    qas = bench.data.facts(k * size, "--sleeps × --batch-facts")
    batches = [qas[i * size : (i + 1) * size] for i in range(k)]
    questions = [qa.question for qa in qas]
    memory_mind = make_mind(bench.root / "sequential-memory", bench.base, bench.embedder, [])
    lifelong_mind = make_mind(bench.root / "sequential-lifelong", bench.base, bench.embedder, [])
    naive = RawTextFineTune(bench.base, s.train())
    strategy = s.strategies[0]
    extras = {f"lifelong ({x})": (x, make_mind(bench.root / f"sequential-lifelong-{i + 1}", bench.base, bench.embedder, []))
              for i, x in enumerate(s.strategies[1:])}  # each other strategy on request: its own mind, served arm only
    extra_sleeps: dict[str, list[dict[str, Any]]] = {name: [] for name in extras}

    matrices: dict[str, list[list[float]]] = {name: [] for name in (*ARMS, *extras)}
    predictions: dict[str, list[list[str]]] = {name: [] for name in ("base", *ARMS, *extras)}

    def row(name: str, lm: Any, retrieve: Any = None) -> list[float]:
        score = acquisition(lm, qas, [retrieve(q) for q in questions] if retrieve else None)
        predictions[name].append(score["predictions"])
        correct = [contains_answer(p, qa.key) for p, qa in zip(score["predictions"], qas, strict=True)]
        return [sum(correct[i * size : (i + 1) * size]) / size for i in range(k)]

    with status("sequential: the base model's row"):
        base_row = row("base", bench.base)
    sleeps, naive_stats, lifelong_texts = [], [], []
    extra_texts: dict[str, list[str]] = {name: [] for name in extras}
    for i, batch in enumerate(batches):
        records = [fact_record(qa) for qa in batch]
        memory_mind.learn_records(records)
        lifelong_mind.learn_records(records)
        naive_stats.append(naive.train([qa.answer for qa in batch], f"naive fine-tune, batch {i + 1}"))
        slept = sleep_once(lifelong_mind, strategy, s.train(), f"sleep {i + 1}", questions, s.synthesis())
        lifelong_texts += slept["training_texts"]
        sleeps.append(slept["info"])
        for name, (other, mind) in extras.items():
            mind.learn_records(records)
            other_slept = sleep_once(mind, other, s.train(), f"sleep {i + 1}, {other}", questions, s.synthesis())
            extra_texts[name] += other_slept["training_texts"]
            extra_sleeps[name].append(other_slept["info"])
        served = lifelong_mind.language_model  # the active version: a refused sleep leaves the previous one serving
        with status(f"sequential: evaluating every arm after batch {i + 1}"):
            matrices["memory"].append(row("memory", bench.base, retriever(memory_mind)))
            matrices["naive fine-tune"].append(row("naive fine-tune", naive.lm))
            matrices["lifelong"].append(row("lifelong", served))
            if slept["info"]["activated"]:  # the served model is this candidate
                matrices["lifelong candidate"].append(matrices["lifelong"][-1])
                predictions["lifelong candidate"].append(predictions["lifelong"][-1])
            else:
                matrices["lifelong candidate"].append(row("lifelong candidate", lifelong_mind.version_model(slept["info"]["version"])))
            matrices["lifelong + memory"].append(row("lifelong + memory", served, retriever(lifelong_mind)))
            for name, (_, mind) in extras.items():
                matrices[name].append(row(name, mind.language_model))
        verdict = "promoted" if slept["info"]["activated"] else "refused"
        console().print(f"  after batch {i + 1} (sleep {verdict}): " + "; ".join(
            f"{name} " + " ".join(f"{v:.2f}" for v in matrices[name][-1]) for name in matrices))
    held_out = check_held_out([Arm("naive fine-tune", naive.lm, training_texts=naive.texts),
                               Arm("lifelong", served, training_texts=lifelong_texts),
                               *(Arm(name, mind.language_model, training_texts=extra_texts[name])
                                 for name, (_, mind) in extras.items())], questions)
    return {
        "batches": k, "batch_size": size, "strategy": strategy, "base_row": base_row,
        "arms": {name: {"matrix": m, **transfer(m)} for name, m in matrices.items()},
        "sleeps": sleeps, "extra_sleeps": extra_sleeps, "naive_train": naive_stats, "seal_reference_bwt": SEAL_BWT,
        "held_out": held_out,
        "predictions": predictions, "questions": [{"question": qa.question, "key": qa.key} for qa in qas],
    }


def report(results: dict[str, Any]) -> list[str]:
    k = results["batches"]
    refused = [i + 1 for i, s in enumerate(results["sleeps"]) if not s["activated"]]
    lines = [f"{k} batches of {results['batch_size']} TOFU facts, learned one batch at a time; each cell is closed-book "
             f"containment on a batch (memory arms: with retrieval). `lifelong` is the served model: a refused sleep "
             f"leaves the previous version active (refused: {', '.join(map(str, refused)) or 'none'}), and its batch is "
             f"learned again by the next sleep, which this BWT would count as positive transfer; `lifelong candidate` is "
             f"each sleep's module whatever the gate said. The run stops if a scoring question is in any training data.", "",
             *markdown_table(["arm", "average accuracy", "BWT", "forgetting"],
                             [[name, a["average_accuracy"], a["backward_transfer"], a["forgetting"]] for name, a in results["arms"].items()]),
             f"For reference only (different model, data and edits): SEAL (Zweiger et al. 2025) reports BWT of about "
             f"{results['seal_reference_bwt']:+.2f} for sequential self-edits on Qwen2.5-7B.", "",
             *losses(results["arms"], {"average_accuracy": True, "backward_transfer": True, "forgetting": False})]
    if results.get("extra_sleeps"):
        lines += [f"`lifelong (<strategy>)` arms: the served model of the same {k} sleeps with that strategy instead of "
                  f"`{results['strategy']}`, in a mind of its own.", ""]
    lines += ["Base model row: " + " ".join(f"{v:.2f}" for v in results["base_row"]), ""]
    gated = {"lifelong": results["sleeps"], **results.get("extra_sleeps", {})}
    for name, arm in results["arms"].items():
        rows = [[str(i + 1), *r] + ([gate_summary(gated[name][i])] if name in gated else [])
                for i, r in enumerate(arm["matrix"])]
        lines += [f"### {name}", "", *markdown_table(["after batch", *[f"batch {j + 1}" for j in range(k)]] + (["gate"] if name in gated else []), rows)]
    return lines


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arms = results["arms"]
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3.6))
    for ax, (name, arm) in zip(np.atleast_1d(axes), arms.items(), strict=True):
        matrix = np.array(arm["matrix"])
        ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] < 0.6 else "black")
        ax.set_title(f"{name}\nBWT {arm['backward_transfer']:+.2f}, avg {arm['average_accuracy']:.2f}", fontsize=9)
        ax.set_xlabel("batch")
        ax.set_ylabel("after learning batch")
        ax.set_xticks(range(matrix.shape[1]), [str(j + 1) for j in range(matrix.shape[1])])
        ax.set_yticks(range(matrix.shape[0]), [str(i + 1) for i in range(matrix.shape[0])])
    fig.suptitle(f"Sequential learning, {results['batches']} batches (SEAL reports BWT {results['seal_reference_bwt']:+.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "sequential_matrix.png", dpi=120)
    plt.close(fig)
