"""Re-score a finished `lifelong bench acquisition-squad --squad-modes single` run under a
candidate change to the grounded fallback (src/lifelong/model/routed.py), without training or
generating anything again.

The candidate rule: a module's closed-book answer that adds no content word the base's reading
of the notes does not also add (beyond the question's) does not replace that reading. It was
suggested by a refused topic module of the governance study, whose "confirmed recall" ("...
received the prestigious award.") replaced a reading that quoted the note's whole sentence
("... the prestigious Nebula Award for Best Novel."). SQuAD is where the confirmed-recall
thresholds were read off, so the rule must not cost answers there.

An approximation: an answer counts as fallback-served where the lifelong +
memory answer equals the lifelong arm's closed-book answer and differs from the memory arm's
(the base's reading of the same retrieved notes).

    .venv/bin/python benchmarks/fallback_subset_rule.py RESULTS_JSON [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import machine_info, results_dir, write_json

from lifelong.bench.data import BenchData
from lifelong.prompt import content_words
from lifelong.scoring import contains_answer


def says_nothing_more(module_answer: str, reading: str, question: str) -> bool:
    """Whether every content word the module's answer adds to the question's is one the reading adds too."""
    asked = set(content_words(question))
    return set(content_words(module_answer)) - asked <= set(content_words(reading)) - asked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    run = json.loads(args.results.read_text(encoding="utf-8"))
    arms = run["modes"]["single"]["arms"]
    passages = BenchData(args.data).passages(run["passages"])  # the run records how many passages it asked
    qas = [qa for p in passages for qa in p.questions]
    reading, closed, served = (arms[n]["predictions"] for n in ("memory", "lifelong (routed+context)", "lifelong + memory"))
    if not len(qas) == len(reading) == len(closed) == len(served):
        raise SystemExit(f"{args.results} holds {len(served)} answers for {len(qas)} questions; give the matching --data")
    rows = []
    for qa, r, c, s in zip(qas, reading, closed, served, strict=True):
        fallback = s == c and s != r
        changed = fallback and says_nothing_more(c, r, qa.question)
        new = r if changed else s
        rows.append({"question": qa.question, "gold": qa.answer, "fallback_served": fallback, "changed": changed,
                     "served_right": contains_answer(s, qa.answer), "rule_right": contains_answer(new, qa.answer),
                     **({"module": c, "reading": r} if changed else {})})
    summary = {"questions": len(rows), "fallback_served": sum(r["fallback_served"] for r in rows),
               "changed_by_rule": sum(r["changed"] for r in rows),
               "containment_served": sum(r["served_right"] for r in rows),
               "containment_with_rule": sum(r["rule_right"] for r in rows),
               "rule_gained": sum(r["rule_right"] and not r["served_right"] for r in rows),
               "rule_lost": sum(r["served_right"] and not r["rule_right"] for r in rows)}
    out = results_dir("fallback_subset_rule")
    write_json(out / "results.json", {"source": str(args.results), "machine": machine_info(None), "summary": summary,
                                      "changed": [r for r in rows if r["changed"]]})
    print(json.dumps(summary, indent=1))
    print(out / "results.json")


if __name__ == "__main__":
    main()
