"""Compare the finished passages of a SQuAD single-passage run (its `--resume` checkpoint,
complete or not) with a finished run on the same passages, answer by answer.

Why: a recipe change is judged on SQuAD single passages (SEAL's protocol), a run of hours.
When the first passages already differ one way (answers the reference got right and the new
recipe lost, none the other way), the paired counts say so without waiting for all 50, and
the rest of the run can resume later from the same checkpoint.

    .venv/bin/python benchmarks/squad_recipe_compare.py CHECKPOINT_JSON REFERENCE_RESULTS_JSON [--data ../shared/data] [--first N]

CHECKPOINT_JSON: results/acquisition-squad/partial-*.json of the new run; REFERENCE_RESULTS_JSON:
a finished `lifelong bench acquisition-squad --squad-modes single` run's results.json, or another
run's checkpoint (then only the passages both finished are compared).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import machine_info, results_dir, write_json

from lifelong.bench.data import BenchData
from lifelong.scoring import contains_answer

def compare(checkpoint: dict[str, Any], reference: dict[str, Any], data: Path, first: int | None = None) -> dict[str, Any]:
    """Per arm: right answers in each run on the checkpoint's passages (only the first `first`
    passages where given: two recipes' checkpoints compared on the passages both finished),
    and the paired flips."""
    ref_units = reference.get("units")  # a checkpoint: predictions per passage, not per run
    passages = BenchData(data).passages(reference["passages"] if ref_units is None else reference["identity"]["settings"]["passages"])
    first_question = [sum(len(p.questions) for p in passages[:i]) for i in range(len(passages))]
    ref_arms = reference["modes"]["single"]["arms"] if ref_units is None else None
    lifelong = f"lifelong ({checkpoint['identity']['settings']['strategies'][0]})"  # the arm lifelong + memory serves
    arms = ("memory", lifelong, "lifelong + memory")
    counts = {arm: {"new": 0, "reference": 0, "new_only": 0, "reference_only": 0} for arm in arms}
    units, questions, promoted = [], 0, 0
    for key, unit in checkpoint["units"].items():
        mode, index, title = key.split("/", 2)
        if (first is not None and int(index) >= first) or (ref_units is not None and key not in ref_units):
            continue
        passage = passages[int(index)]
        if mode != "single" or passage.title != title:
            raise SystemExit(f"checkpoint unit {key} is not passage {index} of --data ({passage.title}); give the data it ran on")
        value = unit["value"]
        info = value["strategies"][lifelong]
        promoted += bool(info.get("activated", info.get("passed")))
        units.append(key)
        questions += len(passage.questions)
        for arm in arms:
            for j, qa in enumerate(passage.questions):
                new = contains_answer(value["predictions"][arm][j], qa.answer)
                old_prediction = (ref_units[key]["value"]["predictions"][arm][j] if ref_units is not None
                                  else ref_arms[arm]["predictions"][first_question[int(index)] + j])
                old = contains_answer(old_prediction, qa.answer)
                counts[arm]["new"] += new
                counts[arm]["reference"] += old
                counts[arm]["new_only"] += new and not old
                counts[arm]["reference_only"] += old and not new
    return {"passages": len(units), "questions": questions, "promoted": promoted, "arms": counts, "units": units}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--first", type=int, default=None, help="compare only passages 1 to FIRST")
    args = parser.parse_args()
    checkpoint = json.loads(args.checkpoint.read_text(encoding="utf-8"))
    reference = json.loads(args.reference.read_text(encoding="utf-8"))
    result = compare(checkpoint, reference, args.data, args.first)
    out = results_dir("squad_recipe_compare")
    write_json(out / "results.json", {"checkpoint": str(args.checkpoint), "checkpoint_identity": checkpoint["identity"],
                                      "first": args.first, "reference": str(args.reference), "reference_code": reference["machine"].get("code") if "machine" in reference else None,
                                      "machine": machine_info(None), **result})
    print(f"{result['passages']} passages, {result['questions']} questions, {result['promoted']} promoted")
    for arm, c in result["arms"].items():
        print(f"{arm}: {c['new']} against {c['reference']} right; only the new run {c['new_only']}, "
              f"only the reference {c['reference_only']}")
    print(out / "results.json")


if __name__ == "__main__":
    main()
