"""How well the instruction screen (src/lifelong/memory/injection.py) finds planted instructions
it was never fitted on, and how often it holds ordinary text, against its phrase cues alone.

Two parts, one run:

- choice of fit: the examples came in rounds (memory/instruction_examples.py: the first
  pattern list's phrasings, then two reviewers' sets, each with look-alike benign sentences).
  Fit on the first list and one reviewer's set, test on the other reviewer's: a centroid
  difference and logistic regression at two strengths, each with its threshold at the highest
  benign training score. The product ships the logistic fit at L2 = 1e-3 on every round.
- held out: the shipped screen on bench/injection_held_out.py (40 instructions and 60 benign
  look-alikes written by a third reviewer after the screen was fixed), the 300 TOFU answer
  sentences, the SQuAD passages whole and sentence by sentence, and the governance study's 100
  chat turns (each carrying private data); the cues alone beside it.

Writes results/injection_screen/<UTC timestamp>/results.json and injection_screen.png.

    .venv/bin/python benchmarks/injection_screen.py [--data ../shared/data]

About a minute on 2 CPU cores (MiniLM embeds a few thousand sentences).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import machine_info, results_dir, write_json

from lifelong.bench import injection_held_out as held_out
from lifelong.bench.canaries import plant_canaries
from lifelong.bench.data import BenchData
from lifelong.memory import instruction_examples as examples
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.injection import L2, InstructionScreen, best_scores, fit_screen, instruction_flag

HELD_OUT_SUBJECT, HELD_OUT_PAYLOAD = "the company VPN", "evil.example.com"


def centroid_fit(embedder: MiniLMEmbedder, instructions: list[str], benign: list[str]) -> tuple[np.ndarray, float, float]:
    direction = embedder.embed(instructions).mean(axis=0) - embedder.embed(benign).mean(axis=0)
    return direction, 0.0, max(best_scores(embedder, benign, direction, 0.0))


def logistic_fit(l2: float) -> Callable[[MiniLMEmbedder, list[str], list[str]], tuple[np.ndarray, float, float]]:
    return lambda embedder, instructions, benign: fit_screen(embedder, instructions, benign, l2=l2)


def flagged(embedder: MiniLMEmbedder, fit: tuple[np.ndarray, float, float], texts: list[str]) -> list[bool]:
    weights, bias, threshold = fit
    return [s > threshold for s in best_scores(embedder, texts, weights, bias)]


def cross_validation(embedder: MiniLMEmbedder) -> dict[str, Any]:
    first = list(examples.INSTRUCTIONS[examples.INSTRUCTION_ROUNDS["first pattern list"]])
    benign_templates = examples.fill(examples.BENIGN_TEMPLATES)
    rounds = {name: (examples.fill(examples.INSTRUCTIONS[examples.INSTRUCTION_ROUNDS[name]]),
                     list(examples.BENIGN[examples.BENIGN_ROUNDS[name]])) for name in ("reviewer A", "reviewer B")}
    methods = {"centroid": centroid_fit, "logistic L2=1e-3": logistic_fit(1e-3), "logistic L2=1e-2": logistic_fit(1e-2)}
    rows: dict[str, Any] = {}
    for train, test in (("reviewer A", "reviewer B"), ("reviewer B", "reviewer A")):
        instructions = examples.fill(tuple(first)) + rounds[train][0]
        benign = rounds[train][1] + benign_templates
        for name, method in methods.items():
            fit = method(embedder, instructions, benign)
            caught = flagged(embedder, fit, rounds[test][0])
            cues = [bool(instruction_flag(t)) for t in rounds[test][0]]
            false = flagged(embedder, fit, rounds[test][1])
            false_cues = [bool(instruction_flag(t)) for t in rounds[test][1]]
            rows[f"fit on first list + {train}, test on {test}: {name}"] = {
                "instructions": len(caught), "flagged": sum(caught), "flagged_with_cues": sum(a or b for a, b in zip(caught, cues)),
                "benign": len(false), "false_flags": sum(false), "false_flags_with_cues": sum(a or b for a, b in zip(false, false_cues))}
    return rows


def held_out_rates(embedder: MiniLMEmbedder, data: BenchData) -> dict[str, Any]:
    screen = InstructionScreen(embedder, fit_screen(embedder))  # fitted now, not read from a cache another version wrote
    passages = [p.text for p in data.passages(50)]
    sets = {
        "held-out instructions": [t.format(subject=HELD_OUT_SUBJECT, payload=HELD_OUT_PAYLOAD) for t in held_out.INSTRUCTIONS],
        "held-out benign look-alikes": list(held_out.BENIGN),
        "TOFU answer sentences": [r["answer"] for r in data.fact_rows()],
        "SQuAD sentences": [s for p in passages for s in re.split(r"(?<=[.!?])\s+", p) if s.strip()],
        "SQuAD passages whole": passages,
        "chat turns (governance canaries)": [c.turn for c in plant_canaries(100, [r["answer"] for r in data.fact_rows()[-100:]], seed=0)],
    }
    rows = {}
    for name, texts in sets.items():
        cues = [instruction_flag(t) for t in texts]
        flags = screen.flags(texts)
        rows[name] = {"texts": len(texts), "flagged": sum(map(bool, flags)), "flagged_by_cues": sum(map(bool, cues)),
                      "flagged_texts": [t for t, f in zip(texts, flags) if f] if name != "held-out instructions" else [],
                      "missed": [t for t, f in zip(texts, flags) if not f] if name == "held-out instructions" else []}
    return rows


def plot(rows: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    cues = [rows[n]["flagged_by_cues"] / rows[n]["texts"] for n in names]
    screen = [rows[n]["flagged"] / rows[n]["texts"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(x - 0.2, cues, 0.4, label="phrase cues alone")
    ax.bar(x + 0.2, screen, 0.4, label="cues + meaning (shipped)")
    ax.set_xticks(x, [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    ax.set_ylabel("share flagged")
    ax.set_title("Instruction screen on text it was never fitted on (first bar group: should be 1, the rest 0)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    started = time.perf_counter()
    embedder = MiniLMEmbedder()
    data = BenchData(args.data)
    results = {"study": "injection_screen", "shipped_l2": L2, "cross_validation": cross_validation(embedder),
               "held_out": held_out_rates(embedder, data)}
    results["wall_seconds"] = time.perf_counter() - started
    results["machine"] = machine_info()
    out = results_dir("injection_screen")
    write_json(out / "results.json", results)
    plot(results["held_out"], out / "injection_screen.png")
    for name, row in results["cross_validation"].items():
        print(f"{name}: {row['flagged']}/{row['instructions']} flagged (+cues {row['flagged_with_cues']}), "
              f"{row['false_flags']}/{row['benign']} benign flagged (+cues {row['false_flags_with_cues']})")
    for name, row in results["held_out"].items():
        print(f"{name}: {row['flagged']}/{row['texts']} flagged (cues alone {row['flagged_by_cues']})")
    print(out)


if __name__ == "__main__":
    main()
