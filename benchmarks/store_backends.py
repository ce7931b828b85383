"""The two memory stores side by side in one run: SQLite (the embedded default) and PostgreSQL
+ pgvector, at 10k and 100k memories, and recall@5 on the TOFU dev questions.

Per size and backend: ingest rate of the store's own batch write (store.add, batches of
--batch, one transaction each, corpus embeddings precomputed and cached as in
retrieval_latency.py; what learn_records adds on top, embedding and the privacy and poisoning
screens, is the same for both backends), query latency p50/p95 for hybrid with the query vector given, hybrid
from the text (MiniLM included), keyword only and vector only, and recall@5 of the synthetic
paraphrased questions. Then the 300 TOFU answer sentences are learned by each backend and their
questions asked (real embeddings): recall@5 per mode, which the issue wants equal across
backends. SQLite searches vectors exactly in RAM; PostgreSQL through pgvector's HNSW index
(ef_search 200), so a difference in vector recall is the approximate index's.

The PostgreSQL server is started from the `pgserver` wheel (PostgreSQL 16 with pgvector) in a
temporary folder unless --postgres-url names one. Writes results/store_backends/<UTC>/results.json
and store_backends.png.

    .venv/bin/python benchmarks/store_backends.py [--sizes 10000,100000] [--data ../shared/data]

About 20 minutes on 2 cores with the 100k corpus embeddings cached (about 11 more to compute them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, speed_probe, write_json
from _synthetic import FactGenerator, sample_queries
from retrieval_latency import LookupEmbedder, corpus_embeddings, parse_sizes, recall_at_k, time_queries

from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind
from lifelong.progress import console, status, track

STUDY = "store_backends"
BACKENDS = ("sqlite", "postgresql")
MODES = ("hybrid", "hybrid_with_embedding", "keyword", "vector")


def open_mind(folder: Path, backend: str, url: str, embedder: Any, tag: str) -> Mind:
    store = url if backend == "postgresql" else None
    return Mind.init(folder / f"{backend}-{tag}", store=store, schema=f"bench_{tag}_{os.getpid()}", embedder=embedder)


def measure_size(backend: str, url: str, facts: list, vectors: Any, questions: list[str], query_vectors: Any,
                 answer_index: list[int], embedder: LookupEmbedder, workdir: Path, batch: int, k: int) -> dict[str, Any]:
    n = len(facts)
    mind = open_mind(workdir, backend, url, embedder, f"n{n}")
    try:
        ids: list[int] = []
        start = time.perf_counter()
        for first in track(range(0, n, batch), f"{backend}: store.add x{batch} ({n:,})", -(-n // batch)):
            chunk = facts[first:first + batch]
            ids += [r.id for r in mind.store.add([NewMemory(text=f.text, source="synthetic") for f in chunk], vectors[first:first + batch])]
        ingest_s = time.perf_counter() - start
        targets = [ids[i] for i in answer_index]
        vector_of = dict(zip(questions, query_vectors, strict=True))

        def search(mode: str, with_vector: bool) -> Callable[[str], list[int]]:
            return lambda q: [h.memory.id for h in mind.retriever.search(
                q, k, mode=mode, query_vector=vector_of[q] if with_vector else None)]  # type: ignore[arg-type]

        plans = {"hybrid": search("hybrid", True), "hybrid_with_embedding": lambda q: [h.memory.id for h in mind.recall(q, k)],
                 "keyword": search("keyword", False), "vector": search("vector", True)}
        latency, recall = {}, {}
        for name, run in plans.items():
            latency[name], results = time_queries(f"{backend}: {name} ({n:,})", questions, run)
            latency[name].pop("samples_ms")
            recall[name] = recall_at_k(results, targets)
    finally:
        mind.close()
    return {"ingest": {"memories": n, "seconds": ingest_s, "per_second": n / ingest_s}, "latency": latency, f"recall@{k}": recall}


def tofu_recall(backend: str, url: str, rows: list[dict], model: MiniLMEmbedder, workdir: Path, k: int) -> dict[str, Any]:
    """The retrieval study's TOFU set on this backend: 300 answers learned, their questions asked."""
    mind = open_mind(workdir, backend, url, model, "tofu")
    try:
        learned = mind.learn_records([NewMemory(r["answer"], str(r["id"]), "user", "default", "fact", None) for r in rows])
        targets = [w.id for w in learned.results]
        out = {}
        for mode in ("hybrid", "keyword", "vector"):
            hits = [[h.memory.id for h in mind.recall(r["question"], k, mode=mode)] for r in rows]
            out[mode] = recall_at_k(hits, targets)
        return {"questions": len(rows), "memories": len(set(targets)), f"recall@{k}": out}
    finally:
        mind.close()


def start_postgres(folder: Path) -> tuple[str, Any]:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(folder))
    import pgserver

    server = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
    return server.get_uri(), server


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in result["sizes"]]
    fig, (lat, ing) = plt.subplots(1, 2, figsize=(12, 4.5))
    for backend, colour in zip(BACKENDS, ("tab:blue", "tab:orange"), strict=True):
        for mode, style in (("hybrid", "o-"), ("hybrid_with_embedding", "s--"), ("vector", "v:")):
            lat.plot(sizes, [r[backend]["latency"][mode]["p95_ms"] for r in result["sizes"]], style, color=colour,
                     label=f"{backend} {mode.replace('_', ' ')}")
    lat.set_xscale("log")
    lat.set_xticks(sizes, [f"{s:,}" for s in sizes])
    lat.minorticks_off()
    lat.set_xlabel("memories")
    lat.set_ylabel("p95 ms per query")
    lat.set_title("Query latency p95 (k=%d)" % result["config"]["k"])
    lat.grid(alpha=0.3)
    lat.legend(fontsize=7)
    width = 0.38
    for i, backend in enumerate(BACKENDS):
        bars = ing.bar([j + (i - 0.5) * width for j in range(len(sizes))],
                       [r[backend]["ingest"]["per_second"] for r in result["sizes"]], width, label=backend)
        ing.bar_label(bars, fmt="%.0f", fontsize=8)
    ing.set_xticks(range(len(sizes)), [f"{s:,}" for s in sizes])
    ing.set_xlabel("memories")
    ing.set_ylabel("memories stored per second (embeddings precomputed)")
    ing.set_title("Ingest: store.add in batches of %d" % result["config"]["batch"])
    ing.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000], help="corpus sizes (default 10000,100000)")
    parser.add_argument("--queries", type=int, default=200, help="queries per size and mode (default 200)")
    parser.add_argument("--batch", type=int, default=1_000, help="memories per learn_records call (default 1000)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="folder holding tofu_authors_dev.jsonl (default ../shared/data)")
    parser.add_argument("--postgres-url", default=None, help="an existing server (default: start one from the pgserver wheel)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "lifelong-bench-cache")
    args = parser.parse_args()

    started = time.perf_counter()
    out = results_dir(STUDY)
    work = Path(tempfile.mkdtemp(prefix="lifelong-stores-"))
    server = None
    url = args.postgres_url
    if url is None:
        with status("starting PostgreSQL (pgserver wheel)"):
            url, server = start_postgres(work)
    model = MiniLMEmbedder()
    model.embed(["warm-up"])
    facts = FactGenerator(args.seed).take(max(args.sizes))
    texts = [f.text for f in facts]
    corpus, cache = corpus_embeddings(texts, args.seed, args.cache_dir, model)
    embedder = LookupEmbedder(model, texts, corpus)
    probes = [{"when": "start", **speed_probe()}]
    runs = []
    for size in args.sizes:
        console().rule(f"{size:,} memories")
        queries = sample_queries(facts[:size], args.queries, args.seed)
        questions = [q for q, _ in queries]
        query_vectors = model.embed(questions)
        run = {"size": size, "queries": len(questions)}
        for backend in BACKENDS:
            run[backend] = measure_size(backend, url, facts[:size], corpus[:size], questions, query_vectors,
                                        [i for _, i in queries], embedder, work, args.batch, args.k)
        runs.append(run)
        probes.append({"when": f"after {size}", **speed_probe()})
    rows = [json.loads(line) for line in (args.data / "tofu_authors_dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    tofu = {backend: tofu_recall(backend, url, rows, model, work, args.k) for backend in BACKENDS}
    if server is not None:
        server.cleanup()

    result = {"study": STUDY, "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "postgres": "pgserver wheel (PostgreSQL 16.2, pgvector 0.6.2)" if server is not None else "given URL",
              "corpus_embeddings": cache, "sizes": runs, "tofu": tofu,
              "tofu_recall_equal": tofu["sqlite"][f"recall@{args.k}"] == tofu["postgresql"][f"recall@{args.k}"],
              "speed_probes": probes, "machine": machine_info(), "wall_seconds": time.perf_counter() - started}
    write_json(out / "results.json", result)
    plot(result, out / "store_backends.png")
    print_table("Ingest (memories/s) and query latency (ms)", ["size", "backend", "ingest/s", *(f"{m} p50/p95" for m in MODES),
                                                              f"recall@{args.k} hybrid"],
                [[f"{r['size']:,}", b, r[b]["ingest"]["per_second"],
                  *(f"{r[b]['latency'][m]['p50_ms']:.1f}/{r[b]['latency'][m]['p95_ms']:.1f}" for m in MODES),
                  r[b][f"recall@{args.k}"]["hybrid"]] for r in runs for b in BACKENDS])
    print_table(f"TOFU dev recall@{args.k}", ["backend", "hybrid", "keyword", "vector"],
                [[b, *(tofu[b][f"recall@{args.k}"][m] for m in ("hybrid", "keyword", "vector"))] for b in BACKENDS])
    print(f"TOFU recall equal across backends: {result['tofu_recall_equal']}; "
          f"median probe {statistics.median(p['numpy_matvec_20k_ms'] for p in probes):.2f} ms; results: {out}")


if __name__ == "__main__":
    main()
