"""What retrieval's ranking does to the answers read from it: the memory arm of
`lifelong bench acquisition-facts` (a mind holding the TOFU fact sentences, the top 3 notes in
the prompt, the base answering greedily) under retrieval variants, in one run.

Recall@5 is what the retrieval study optimises; the answer is what a user gets. The topic
focus (memory/retrieval.py) raised TOFU recall@5 from 0.900 to 0.940, yet it changes which
other notes sit beside the right one, and the 135M reader answers from all three. Variants:
the default (focus on, RRF k 10), focus on with k 60, focus off (k 10), focus off with k 60 (the fusion before
2026-12-03). Sets: the study's first --facts facts, and the rest of the TOFU dev facts.

    .venv/bin/python benchmarks/retrieval_reading.py --data ../shared/data [--facts 100]

Writes results/retrieval_reading/<UTC timestamp>/results.json. About 45 s per variant and set
of 100 on this machine, alone.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, write_json

import lifelong.memory.retrieval as retrieval
from lifelong import Mind
from lifelong.bench.data import BenchData
from lifelong.bench.measure import MAX_ANSWER_TOKENS
from lifelong.evaluate.knowledge import QA, answer_closed_book
from lifelong.model.loader import load_model

VARIANTS = {"default (focus, k 10)": (True, retrieval.RRF_K), "focus on, k 60": (True, 60),
            "focus off, k 10": (False, retrieval.RRF_K), "focus off, k 60": (False, 60)}
RETRIEVED = 3


@contextmanager
def variant(focus: bool, rrf_k: int) -> Iterator[None]:
    """Retrieval with the topic focus on or off and the given fusion constant, restored after."""
    search, saved_k = retrieval.HybridRetriever.search, retrieval.RRF_K

    @functools.wraps(search)
    def chosen(self: Any, *args: Any, **kwargs: Any) -> Any:
        return search(self, *args, **{**kwargs, "focus_topic": focus})

    retrieval.HybridRetriever.search, retrieval.RRF_K = chosen, rrf_k
    try:
        yield
    finally:
        retrieval.HybridRetriever.search, retrieval.RRF_K = search, saved_k


def right_notes_found(qas: list[QA], contexts: list[list[Any]]) -> int:
    """Questions whose own fact sentence is among the notes retrieved for them."""
    return sum(any(m.text == qa.answer for m in ctx) for qa, ctx in zip(qas, contexts, strict=True))


def read_with_memory(lm: Any, qas: list[QA]) -> dict[str, Any]:
    mind = Mind.init(Path(tempfile.mkdtemp(prefix="retrieval-reading-")) / "mind", language_model=lm)
    for qa in qas:
        mind.learn(qa.answer)
    top5 = [[hit.memory for hit in mind.recall(qa.question, 5)] for qa in qas]
    notes = [ctx[:RETRIEVED] for ctx in top5]
    score = answer_closed_book(lm, qas, notes, max_new_tokens=MAX_ANSWER_TOKENS)
    return {"containment": score.containment, "rouge_l_recall": score.rouge_l,
            "right_note_in_top3": right_notes_found(qas, notes), "right_note_in_top5": right_notes_found(qas, top5),
            "questions": len(qas), "retrieved": [[m.id for m in ctx] for ctx in notes], "predictions": score.predictions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--facts", type=int, default=100, help="the study's facts (default 100, as acquisition-facts)")
    args = parser.parse_args()

    data = BenchData(args.data)
    study = data.facts(args.facts)
    used = {qa.question for qa in study}
    rest = [qa for qa in data.all_facts() if qa.question not in used]
    lm = load_model()
    started = time.time()
    results: dict[str, Any] = {"sets": {}}
    for set_name, qas in {f"study's {len(study)} facts": study, f"other {len(rest)} facts": rest}.items():
        for name, (focus, rrf_k) in VARIANTS.items():
            with variant(focus, rrf_k):
                results["sets"].setdefault(set_name, {})[name] = read_with_memory(lm, qas)
            print(f"{set_name}, {name}: containment {results['sets'][set_name][name]['containment']:.3f}")
    for set_name, rows in results["sets"].items():
        base = rows["default (focus, k 10)"]["retrieved"]
        for row in rows.values():
            row["same_notes_as_default"] = sum(a == b for a, b in zip(row["retrieved"], base, strict=True))
    results.update({"machine": machine_info(), "wall_seconds": time.time() - started, "retrieved": RETRIEVED})
    out = results_dir("retrieval_reading")
    write_json(out / "results.json", results)
    print_table("the memory arm under retrieval variants", ["set", "retrieval", "containment", "ROUGE-L", "right note in top 3", "in top 5", "same notes as default"],
                [[s, n, f"{r['containment']:.3f}", f"{r['rouge_l_recall']:.3f}", f"{r['right_note_in_top3']}/{r['questions']}",
                  f"{r['right_note_in_top5']}/{r['questions']}", r["same_notes_as_default"]] for s, rows in results["sets"].items() for n, r in rows.items()])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
