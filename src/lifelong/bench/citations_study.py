"""citations: does `ask` cite the memory its answer came from, and only that one?

Every TOFU answer sentence is learned as a memory (about 15 share each fictitious author, so
retrieved memories overlap in many words), every question is asked with `Mind.ask` exactly as
a user would (top 3 memories, greedy), and each answer's citations are compared with the memory
the question was written from. The same answers are scored under the shipped rule
(`lifelong.prompt.cited_memories`) and under the earlier rule (cite every memory that shares
any content word with the answer), so one run gives the before and the after.

Two views, because the reference is the source memory, not what the model actually did:
- in context: the questions whose source memory was in the prompt (a citation can only name
  a memory in the prompt; retrieval misses are the retrieval study's business);
- grounded: the subset whose answer contains the source's key span (TOFU's answer span that
  the question does not give away) while no other memory in the prompt contains it: the
  answer demonstrably came from the source, so a citation of anything else is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lifelong.bench.arms import RETRIEVED, make_mind
from lifelong.bench.context import Bench
from lifelong.bench.output import markdown_table, paired_bars
from lifelong.evaluate.knowledge import key_span
from lifelong.memory.records import Memory, NewMemory
from lifelong.progress import track
from lifelong.prompt import cited_memories, content_words
from lifelong.scoring import contains_answer

Rule = Callable[[str, str, Sequence[Memory]], list[Memory]]


def shared_word_citations(answer: str, question: str, memories: Sequence[Memory]) -> list[Memory]:
    """The rule before this study (kept as its baseline): every memory sharing any content
    word with the answer that the question did not contain."""
    answer_words = content_words(answer) - content_words(question)
    return [m for m in memories if answer_words & content_words(m.text)] if answer_words else []


RULES: dict[str, Rule] = {"any shared word (before)": shared_word_citations, "distinctive support (shipped)": cited_memories}


def run(bench: Bench) -> dict[str, Any]:
    rows = bench.data.fact_rows()[: bench.settings.citation_questions]
    mind = make_mind(bench.root / "citations", bench.base, bench.embedder, [])
    learned = mind.learn_records([NewMemory(r["answer"], str(r["id"]), "user", "default", "fact", None) for r in rows])
    targets = [w.id for w in learned.results]  # a duplicate sentence maps to the memory it merged into
    asked = []
    for row, target in zip(track(rows, "citations: asking", len(rows)), targets, strict=True):
        answer = mind.ask(row["question"], k=RETRIEVED)  # one by one: exactly the answers `ask` gives
        memories = [h.memory for h in answer.retrieved]
        key = key_span(row["question"], row["answer"])
        grounded = (target in [m.id for m in memories] and contains_answer(answer.text, key)
                    and not any(contains_answer(m.text, key) for m in memories if m.id != target))
        asked.append({"question": row["question"], "answer": answer.text, "target": target, "key": key,
                      "in_context": [m.id for m in memories], "grounded": grounded,
                      "cited": {name: [m.id for m in rule(answer.text, row["question"], memories)] for name, rule in RULES.items()}})
    mind.close()
    in_context = [a for a in asked if a["target"] in a["in_context"]]
    grounded = [a for a in asked if a["grounded"]]
    results: dict[str, Any] = {"questions": len(asked), "memories": len(set(targets)), "k": RETRIEVED,
                               "in_context": len(in_context), "grounded": len(grounded), "rules": {}, "answers": asked}
    for name in RULES:
        results["rules"][name] = {"in context": score(in_context, name), "grounded": score(grounded, name)}
    return results


def score(items: Sequence[dict[str, Any]], rule: str) -> dict[str, float | int]:
    """Micro precision (citations that name the source memory), recall (answers whose source
    is cited), and how many memories an answer cites on average."""
    cited = sum(len(a["cited"][rule]) for a in items)
    hits = sum(a["target"] in a["cited"][rule] for a in items)
    precision, recall = hits / cited if cited else 0.0, hits / len(items) if items else 0.0
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall) if hits else 0.0,
            "citations_per_answer": cited / len(items) if items else 0.0, "uncited_answers": sum(not a["cited"][rule] for a in items)}


def report(results: dict[str, Any]) -> list[str]:
    rows = [[name, view, s["precision"], s["recall"], s["f1"], s["citations_per_answer"], s["uncited_answers"]]
            for name, views in results["rules"].items() for view, s in views.items()]
    return [f"{results['questions']} TOFU questions asked with `ask` (top {results['k']} of {results['memories']} memories in the "
            f"prompt). The source memory was in the prompt for {results['in_context']}; the answer contains the source's "
            f"key span and no other memory in the prompt does (grounded) for {results['grounded']}.", "",
            *markdown_table(["rule", "questions", "precision", "recall", "F1", "citations per answer", "answers citing nothing"], rows),
            "Precision: citations that name the question's source memory, over all citations. Recall: answers whose "
            "source memory is cited. In context, an answer drawn from another retrieved memory counts against precision "
            "even when citing that memory is right; the grounded rows have no such ambiguity.", ""]


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, view in zip(axes, ("in context", "grounded"), strict=True):
        names = list(results["rules"])
        paired_bars(ax, names, {key: [results["rules"][n][view][key] for n in names] for key in ("precision", "recall")},
                    f"{view} ({results['in_context' if view == 'in context' else 'grounded']} questions)")
    fig.tight_layout()
    fig.savefig(out / "citations.png", dpi=120)
    plt.close(fig)
