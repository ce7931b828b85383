"""retrieval: does recall put the right memory into the prompt, and how fast?

Two real sets: the 300 TOFU answer sentences (about 15 share each fictitious author's name, so
the name alone never decides), asked their own questions; and the SQuAD passages' chunks,
asked the passages' questions (a hit is any chunk of the right passage). Keyword (BM25),
vector and hybrid (reciprocal-rank fusion) modes, with per-query latency, and the two-list
hybrid without its topic focus beside them. Scale (10^5
memories, against a brute-force baseline) is benchmarks/retrieval_latency.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import quantiles
from typing import Any

from lifelong.bench.arms import make_mind
from lifelong.bench.context import Bench
from lifelong.bench.output import markdown_table, paired_bars
from lifelong.bench.squad_study import passage_records
from lifelong.memory.records import NewMemory
from lifelong.memory.retrieval import MODES
from lifelong.progress import track

K = 5
# each row of the table: the search mode and whether hybrid's topic focus is on; "hybrid, two
# lists" is the plain keyword + vector fusion, measured in the same run as the baseline
ROWS: dict[str, tuple[str, bool]] = {**{mode: (mode, True) for mode in MODES}, "hybrid, two lists": ("hybrid", False)}


def _rank(targets: set[int], ids: list[int]) -> int | None:
    return next((i + 1 for i, mid in enumerate(ids) if mid in targets), None)


def _measure(mind: Any, questions: list[str], targets: list[set[int]], label: str) -> dict[str, Any]:
    ranks: dict[str, list[int | None]] = {mode: [] for mode in ROWS}
    latency: dict[str, list[float]] = {mode: [] for mode in ROWS}
    embed_ms: list[float] = []
    for question, target in zip(track(questions, f"retrieval: {label}", len(questions)), targets, strict=True):
        start = time.perf_counter()
        vector = mind.embedder.embed([question])[0]
        embed_ms.append((time.perf_counter() - start) * 1000)
        for mode, (search_mode, focus) in ROWS.items():
            start = time.perf_counter()
            hits = mind.retriever.search(question, K, mode=search_mode, query_vector=vector, focus_topic=focus)
            # a query is embedded once and shared here; on its own, a vector or hybrid query pays for it
            latency[mode].append((time.perf_counter() - start) * 1000 + (embed_ms[-1] if mode != "keyword" else 0.0))
            ranks[mode].append(_rank(target, [h.memory.id for h in hits]))
    n = len(questions)
    out: dict[str, Any] = {"query_embedding": _percentiles(embed_ms)}
    out["modes"] = {mode: {"recall@1": sum(r == 1 for r in ranks[mode]) / n, f"recall@{K}": sum(r is not None for r in ranks[mode]) / n,
                           f"mrr@{K}": sum(1 / r for r in ranks[mode] if r) / n, **_percentiles(latency[mode])} for mode in ROWS}
    return out


def _percentiles(milliseconds: list[float]) -> dict[str, float]:
    cuts = quantiles(milliseconds, n=20) if len(milliseconds) > 1 else milliseconds * 19
    return {"p50_ms": cuts[9], "p95_ms": cuts[18]}


def run(bench: Bench) -> dict[str, Any]:
    rows = bench.data.fact_rows()
    mind = make_mind(bench.root / "retrieval-tofu", bench.base, bench.embedder, [])
    learned = mind.learn_records([NewMemory(r["answer"], str(r["id"]), "user", "default", "fact", None) for r in rows])
    targets = [{w.id} for w in learned.results]  # a duplicate sentence maps to the memory it merged into
    results: dict[str, Any] = {"k": K, "sets": {}}
    results["sets"]["tofu facts"] = {"memories": len({t for s in targets for t in s}), "questions": len(rows),
                                     **_measure(mind, [r["question"] for r in rows], targets, "TOFU facts")}
    mind.close()

    passages = bench.data.passages(bench.settings.passages)
    mind = make_mind(bench.root / "retrieval-squad", bench.base, bench.embedder, [])
    questions, chunk_targets = [], []
    for passage in passages:
        ids = {w.id for w in mind.learn_records(passage_records(passage.title, passage.text)).results}
        questions += [qa.question for qa in passage.questions]
        chunk_targets += [ids] * len(passage.questions)
    results["sets"]["squad passages"] = {"memories": len(mind.store.list()), "questions": len(questions),
                                         **_measure(mind, questions, chunk_targets, "SQuAD passages")}
    mind.close()
    return results


def report(results: dict[str, Any]) -> list[str]:
    k = results["k"]
    lines = []
    for name, data in results["sets"].items():
        embedding = data["query_embedding"]
        lines += [f"### {name}: {data['questions']} questions over {data['memories']} memories", "",
                  *markdown_table(["mode", "recall@1", f"recall@{k}", f"MRR@{k}", "p50 ms", "p95 ms"],
                                  [[m, v["recall@1"], v[f"recall@{k}"], v[f"mrr@{k}"], v["p50_ms"], v["p95_ms"]] for m, v in data["modes"].items()]),
                  f"Latency is per query, end to end: vector and hybrid include embedding the query "
                  f"(p50 {embedding['p50_ms']:.2f} ms, p95 {embedding['p95_ms']:.2f} ms of it); keyword needs no embedding. "
                  f"Hybrid embeds the query a second time, without its topic words, when most candidates share them; "
                  f"\"hybrid, two lists\" is the plain keyword + vector fusion, for comparison.", ""]
    return lines


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = results["k"]
    fig, axes = plt.subplots(1, len(results["sets"]), figsize=(5 * len(results["sets"]), 4), squeeze=False)
    for ax, (name, data) in zip(axes[0], results["sets"].items(), strict=True):
        modes = list(data["modes"])
        paired_bars(ax, modes, {key: [data["modes"][m][key] for m in modes] for key in ("recall@1", f"recall@{k}")},
                    f"{name} ({data['questions']} questions)", label_size=7)
    fig.tight_layout()
    fig.savefig(out / "retrieval.png", dpi=120)
    plt.close(fig)
