"""Re-score a finished `lifelong bench acquisition-facts` run under the grounded fallback,
without training or generating anything again.

The fallback (src/lifelong/model/routed.py): where a module stepped aside for a quoted note but
the base's answer cites none of the notes, the module answers the bare question closed-book.
Every answer it needs is already in the run's results.json: the memory arm's answers (what the
base says reading the notes), the lifelong arm's closed-book answers and the served lifelong +
memory answers. The run's kept mind (`--keep-minds`) gives the router and the retrieval, so
which questions were stepped aside for is recomputed exactly.

    .venv/bin/python benchmarks/grounded_fallback.py RESULTS_JSON KEPT_LIFELONG_MIND [--split 30]

Prints containment counts for questions 1..split, the rest, and all, and writes
grounded_fallback.json beside RESULTS_JSON. Open a copy of the kept mind (`lifelong backup`):
a newer lifelong upgrades the store it opens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifelong.bench.data import BenchData
from lifelong.mind import Mind
from lifelong.prompt import build_messages, cited_indices
from lifelong.scoring import contains_answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("mind", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", type=int, default=30, help="report questions 1..split and the rest separately")
    parser.add_argument("--version", default="v1")
    args = parser.parse_args()

    arms = json.loads(args.results.read_text())["arms"]
    closed_arm = next(name for name in arms if name.startswith("lifelong ("))
    memory, closed, served = (arms[name]["predictions"] for name in ("memory", closed_arm, "lifelong + memory"))
    rows = []
    with Mind.open(args.mind) as mind:
        qas = BenchData(args.data).facts(len(memory))
        router = mind.version_model(args.version).router
        for i, qa in enumerate(qas):
            notes = [h.memory for h in mind.recall(qa.question, 3, include_superseded=False)]
            [claimed] = router.route([qa.question])
            [served_by] = router.route_prompts([build_messages(qa.question, notes)[-1]["content"]])
            switch = (claimed is not None and served_by is None
                      and not cited_indices(served[i], qa.question, [n.text for n in notes]))
            answer = closed[i] if switch else served[i]
            rows.append({"memory": contains_answer(memory[i], qa.key), "served": contains_answer(served[i], qa.key),
                         "closed_book": contains_answer(closed[i], qa.key), "fallback": contains_answer(answer, qa.key),
                         "switched": switch})
    summary = {}
    for label, part in ((f"1-{args.split}", rows[: args.split]), (f"{args.split + 1}-{len(rows)}", rows[args.split:]),
                        ("all", rows)):
        counts = {key: sum(r[key] for r in part) for key in ("memory", "served", "closed_book", "fallback", "switched")}
        counts["won"] = sum(r["switched"] and r["fallback"] and not r["served"] for r in part)
        counts["lost"] = sum(r["switched"] and r["served"] and not r["fallback"] for r in part)
        summary[label] = {"questions": len(part), **counts}
        print(f"questions {label}: " + ", ".join(f"{k} {v}" for k, v in summary[label].items()))
    (args.results.parent / "grounded_fallback.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
