"""Re-score a finished acquisition run's saved answers under rules for the grounded fallback
(src/lifelong/model/routed.py), without training or generating anything again.

The fallback serves a module's closed-book answer over the base's reading of the retrieved
notes when the notes confirm it (`confirmed_recall`). A refused topic module of the governance
study showed the hole: its recall ("... received the prestigious award.") replaced a reading
that quoted the note ("... the prestigious Nebula Award for Best Novel."). Two rules that keep
the reading in such a case are scored side by side against the rule as it was:

- subset: the recall adds no content word (beyond the question's) the reading does not add;
- names (shipped, `reading_names_more`): subset, and the reading names something from the notes
  (a capitalised word or number the question does not give) the recall does not.

Approximations, since a results file keeps answers, not prompts: an answer counts as
fallback-served where the lifelong + memory answer equals the lifelong arm's closed-book answer
and differs from the memory arm's (the base's reading); the notes are the question's passage
(SQuAD) or fact (TOFU), not the retrieved ones; and the rules are applied to every
fallback-served answer, whichever of the fallback's two conditions served it.

    .venv/bin/python benchmarks/fallback_rule.py RESULTS_JSON [--data ../shared/data]

RESULTS_JSON: `lifelong bench acquisition-squad --squad-modes single` or `acquisition-facts`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine_info, results_dir, write_json

from lifelong.bench.data import BenchData
from lifelong.prompt import adds_nothing_beyond, reading_names_more
from lifelong.scoring import contains_answer


def adds_nothing(recall: str, reading: str, question: str, notes: list[str]) -> bool:
    """The subset rule alone (`adds_nothing_beyond`), in the rules' shape; it reads no notes."""
    return adds_nothing_beyond(recall, reading, question)


RULES: dict[str, Callable[[str, str, str, list[str]], bool]] = {"subset": adds_nothing, "names": reading_names_more}


def saved_answers(run: dict[str, Any], data: Path) -> tuple[list[tuple[str, str, list[str]]], dict[str, list[str]]]:
    """(question, gold, notes) per scored question, and the three arms' answers in the same order:
    results files keep answers by position, so the questions are rebuilt from the data."""
    bench = BenchData(data)
    if "modes" in run:  # acquisition-squad
        if "single" not in run["modes"]:
            raise SystemExit("this acquisition-squad run has no single mode; give a --squad-modes single run")
        arms = run["modes"]["single"]["arms"]
        items = [(qa.question, qa.answer, [p.text]) for p in bench.passages(run["passages"]) for qa in p.questions]
    else:  # acquisition-facts
        arms = run["arms"]
        items = [(qa.question, qa.key, [qa.answer]) for qa in bench.facts(run["facts"])]
        if [q["question"] for q in run["questions"]] != [question for question, _, _ in items]:
            raise SystemExit("the run's questions differ from --data's; give the data it ran on")
    closed = f"lifelong ({run['settings']['strategies'][0]})"  # the arm lifelong + memory serves
    return items, {role: arms[name]["predictions"] for role, name in
                   (("reading", "memory"), ("closed", closed), ("served", "lifelong + memory"))}


def main() -> None:
    """Score every rule on one saved run and write the summary and the changed answers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    items, answers = saved_answers(json.loads(args.results.read_text(encoding="utf-8")), args.data)
    if any(len(a) != len(items) for a in answers.values()):
        raise SystemExit(f"{args.results} holds {len(answers['served'])} answers for {len(items)} questions; "
                         "give the matching --data")
    summary: dict[str, dict[str, int]] = {}
    changed_rows: dict[str, list[dict]] = {}
    for rule_name, rule in RULES.items():
        counts = {"questions": len(items), "fallback_served": 0, "changed": 0, "right_before": 0, "right_after": 0,
                  "gained": 0, "lost": 0}
        changed_rows[rule_name] = []
        for (question, gold, notes), reading, closed, served in zip(items, answers["reading"], answers["closed"],
                                                                    answers["served"], strict=True):
            fallback = served == closed and served != reading
            changed = fallback and rule(closed, reading, question, notes)
            before, after = contains_answer(served, gold), contains_answer(reading if changed else served, gold)
            counts["fallback_served"] += fallback
            counts["changed"] += changed
            counts["right_before"] += before
            counts["right_after"] += after
            counts["gained"] += after and not before
            counts["lost"] += before and not after
            if changed:
                changed_rows[rule_name].append({"question": question, "gold": gold, "recall": closed, "reading": reading,
                                                "recall_right": before, "reading_right": after})
        summary[rule_name] = counts
    out = results_dir("fallback_rule")
    write_json(out / "results.json", {"source": str(args.results), "machine": machine_info(None), "summary": summary,
                                      "changed": changed_rows})
    print(json.dumps(summary, indent=1))
    print(out / "results.json")


if __name__ == "__main__":
    main()
