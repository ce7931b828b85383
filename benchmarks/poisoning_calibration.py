"""Calibrate the write-time contradiction check (src/lifelong/memory/poisoning.py) on the
default model: how many false statements it flags, how many true ones, and how many ordinary
fictitious facts, at several confidence thresholds.

False statements are built from known facts the base model completes correctly
(`known_facts_dev.jsonl`): the true answer is swapped for another answer of the same relation
("Trento is located in the country of Japan."); the true statements are the same prompts with
their answers; the ordinary facts are the 300 TOFU answer sentences. The model-alone check is
measured at several thresholds; then the 300 TOFU sentences are learned into one mind (user
trust) and screened as the product does, neighbours included, counting the true facts it
would quarantine or supersede. Writes results/poisoning_calibration.json.

    .venv/bin/python benchmarks/poisoning_calibration.py [--data ../shared/data] [--known 250]

About 8 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from lifelong.evaluate.knowledge import cloze_correct
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.injection import InstructionScreen
from lifelong.memory.poisoning import CONFIDENCE, RATIO, disagrees, span_probes
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind
from lifelong.model.loader import load_model

THRESHOLDS = (0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # 0.2: untrusted sources; USER_CONFIDENCE: user ones


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--known", type=int, default=250, help="known facts screened for base-right ones")
    parser.add_argument("--statements", type=int, default=50, help="false (and true) statements built from them")
    parser.add_argument("--out", type=Path, default=Path("results/poisoning_calibration.json"))
    args = parser.parse_args()

    lm = load_model("smollm2-135m")
    rows = [json.loads(line) for line in (args.data / "known_facts_dev.jsonl").read_text().splitlines()][: args.known]
    right = [r for r, ok in zip(rows, cloze_correct(lm, rows), strict=True) if ok][: args.statements]
    answers: dict[str, set[str]] = {}
    for row in rows:
        answers.setdefault(row["relation"], set()).add(row["answer"])
    rng = random.Random(0)
    sets: dict[str, list[str]] = {"false": [], "true": []}
    for row in right:
        wrong = sorted(answers[row["relation"]] - {row["answer"]})
        if wrong:
            sets["false"].append(f"{row['prompt']} {rng.choice(wrong)}.")
            sets["true"].append(f"{row['prompt']} {row['answer']}.")
    sets["tofu"] = [json.loads(line)["answer"] for line in (args.data / "tofu_authors_dev.jsonl").read_text().splitlines()]

    started = time.perf_counter()
    probes = {name: [span_probes(lm, text, []) for text in texts] for name, texts in sets.items()}
    seconds = time.perf_counter() - started
    grid = {str(c): {name: sum(any(disagrees(p, c, RATIO) for p in ps) for ps in per_text) for name, per_text in probes.items()}
            for c in THRESHOLDS}
    flagged_false = [text for text, ps in zip(sets["false"], probes["false"], strict=True)
                     if any(disagrees(p, CONFIDENCE, RATIO) for p in ps)]
    results = {"model": lm.name, "ratio": RATIO, "default_confidence": CONFIDENCE, "sizes": {k: len(v) for k, v in sets.items()},
               "flagged_by_confidence": grid, "instruction_flags_on_tofu": sum(map(bool, InstructionScreen(MiniLMEmbedder()).flags(sets["tofu"]))),
               "seconds_per_statement": seconds / sum(len(v) for v in sets.values()), "flagged_false_at_default": flagged_false}
    with tempfile.TemporaryDirectory() as scratch, Mind.init(Path(scratch) / "tofu", language_model=lm) as mind:
        mind.learn_records([NewMemory(text, "tofu") for text in sets["tofu"]])
        started = time.perf_counter()
        screened = mind.screen_pending()
        results["tofu_in_one_mind"] = {
            "memories": len(screened), "seconds": time.perf_counter() - started,
            "quarantined": {s.memory_id: s.quarantine for s in screened if s.quarantine},
            "superseded": {s.memory_id: list(s.supersedes) for s in screened if s.supersedes}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    for c, counts in grid.items():
        print(f"confidence {c}: " + ", ".join(f"{k} {n}/{len(sets[k])}" for k, n in counts.items()))
    tofu = results["tofu_in_one_mind"]
    print(f"300 TOFU facts in one mind: {len(tofu['quarantined'])} quarantined, {len(tofu['superseded'])} superseded another "
          f"({tofu['seconds']:.0f} s)")
    print(f"instruction flags on TOFU: {results['instruction_flags_on_tofu']}/{len(sets['tofu'])}; "
          f"{results['seconds_per_statement'] * 1000:.0f} ms per statement; {args.out}")


if __name__ == "__main__":
    main()
