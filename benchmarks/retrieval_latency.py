"""Ingest throughput and recall latency at 1k, 10k and 100k memories, against a naive baseline.

Ours: Mind.learn_records in batches (one transaction each, FTS5 kept by trigger) and
HybridRetriever.search (FTS5 BM25 + exact in-RAM matrix-vector product, fused by RRF).
Baseline on the same data: one INSERT and one COMMIT per memory into a plain SQLite table,
and search by a pure-Python linear scan (token overlap + per-row numpy dot, same RRF).

Embedding dominates ingest and would hide the store's cost, so corpus vectors are computed
once (cached as .npy, keyed by seed, size and text hash) and served to both systems by text
lookup; embedding throughput is measured separately on a sample. Query latency is timed
both with a precomputed query vector (the store's own cost) and from the text (what a user
waits for, MiniLM included).

Expected full run (sizes 1000,10000,100000) on 2 CPU cores: about 9 minutes the first time,
7 of them computing the 100k corpus embeddings, then about 2 minutes once they are cached.
--quick (sizes 200,1000): about 1 minute the first time, 30 seconds cached.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import heapq
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from _common import filesystem_of, machine_info, print_table, results_dir, speed_probe, write_json
from _synthetic import Fact, FactGenerator, sample_queries

from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.records import NewMemory
from lifelong.memory.retrieval import RRF_K, STOPWORDS, content_words
from lifelong.mind import Mind
from lifelong.progress import console, status, track

STUDY = "retrieval_latency"
TARGET_P95_MS = 20.0
DEFAULT_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 1_000)
WARMUP_QUERIES = 5
WRITE_THEN_QUERY_REPEATS = 3


# -- embeddings ----------------------------------------------------------------------------


def corpus_embeddings(texts: list[str], seed: int, cache_dir: Path, model: MiniLMEmbedder) -> tuple[np.ndarray, dict[str, Any]]:
    """Corpus vectors, computed once per (seed, size, texts) and cached: 100k MiniLM
    embeddings take about 11 minutes on 2 cores, and both systems must get the same ones."""
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    path = cache_dir / f"minilm-seed{seed}-n{len(texts)}-{digest}.npy"
    if path.exists():
        matrix = np.load(path)
        if matrix.shape == (len(texts), model.dim):
            return matrix, {"cache": str(path), "cached": True}
    cache_dir.mkdir(parents=True, exist_ok=True)
    chunk = 1_000
    parts = []
    start = time.perf_counter()
    for i in track(range(0, len(texts), chunk), f"embedding {len(texts):,} facts (cached afterwards)", -(-len(texts) // chunk)):
        parts.append(model.embed(texts[i : i + chunk]))
    seconds = time.perf_counter() - start
    matrix = np.concatenate(parts)
    np.save(path, matrix)
    return matrix, {"cache": str(path), "cached": False, "seconds": seconds, "per_second": len(texts) / seconds}


class LookupEmbedder:
    """Serves precomputed corpus vectors by text, so ingest timing measures the store alone;
    any other text (a query) goes to the real model, so recall-from-text timing is real."""

    name = MiniLMEmbedder.name
    dim = MiniLMEmbedder.dim

    def __init__(self, model: MiniLMEmbedder, texts: Sequence[str], matrix: np.ndarray) -> None:
        self.model = model
        self.matrix = matrix
        self.rows = {text: i for i, text in enumerate(texts)}
        self.lookup_seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        rows = [self.rows.get(t) for t in texts]
        if texts and all(r is not None for r in rows):
            out = self.matrix[rows]
            self.lookup_seconds += time.perf_counter() - start
            return out
        return self.model.embed(texts)


# -- measurement helpers ---------------------------------------------------------------------


def probe(model: MiniLMEmbedder, when: str) -> dict[str, Any]:
    """Machine speed right now, including one-sentence MiniLM latency (median of 10)."""
    samples = []
    for _ in range(10):
        start = time.perf_counter()
        model.embed(["Who is the spouse of the founder of the oldest glassworks?"])
        samples.append((time.perf_counter() - start) * 1000)
    return {"when": when, **speed_probe(), "minilm_one_sentence_ms": statistics.median(samples)}


def summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(samples_ms)
    return {
        "n": len(ordered),
        "p50_ms": float(np.percentile(ordered, 50)),
        "p95_ms": float(np.percentile(ordered, 95)),
        "mean_ms": statistics.fmean(ordered),
        "max_ms": ordered[-1],
        "samples_ms": list(samples_ms),
    }


def time_queries(label: str, queries: Sequence[Any], run: Callable[[Any], list[int]]) -> tuple[dict[str, Any], list[list[int]]]:
    """Latency of `run` per query after a short warm-up, and the ids it returned.

    Progress is one line per step, not a live bar: a bar redraws from a thread ten times a
    second, holding the GIL, which would land inside about 5% of 5 ms queries: the p95."""
    for query in queries[:WARMUP_QUERIES]:
        run(query)
    gc.collect()
    samples, results = [], []
    for query in queries:
        start = time.perf_counter()
        ids = run(query)
        samples.append((time.perf_counter() - start) * 1000)
        results.append(ids)
    stats = summary(samples)
    console().print(f"  {label}: {len(samples)} queries, p50 {stats['p50_ms']:.2f} ms, p95 {stats['p95_ms']:.2f} ms")
    return stats, results


def recall_at_k(results: list[list[int]], targets: list[int]) -> float:
    return sum(t in ids for ids, t in zip(results, targets, strict=True)) / len(targets)


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- ours ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One corpus size: the facts, their vectors, the queries and the right memory for each."""

    facts: list[Fact]
    vectors: np.ndarray
    questions: list[str]
    query_vectors: np.ndarray
    answer_index: list[int]  # fact index each question is about


def measure_ours(work: Workload, embedder: LookupEmbedder, workdir: Path, batch: int, k: int) -> dict[str, Any]:
    n = len(work.facts)
    with tempfile.TemporaryDirectory(prefix="lifelong-latency-", dir=workdir) as tmp:
        mind = Mind.open(Path(tmp) / "mind", create=True, embedder=embedder)
        try:
            lookup_before = embedder.lookup_seconds
            ids: list[int] = []
            batch_seconds = []
            start = time.perf_counter()
            for chunk in track(list(batches(work.facts, batch)), f"ours: learn_records x{batch} ({n:,})"):
                t0 = time.perf_counter()
                report = mind.learn_records([NewMemory(text=f.text, source="synthetic") for f in chunk])
                batch_seconds.append(time.perf_counter() - t0)
                ids.extend(r.id for r in report.results)
            lookup = embedder.lookup_seconds - lookup_before
            ingest_s = time.perf_counter() - start - lookup
            db_bytes = directory_bytes(Path(tmp) / "mind")

            retriever = mind.retriever
            start = time.perf_counter()
            index = retriever.vector_index()
            index_load_s = time.perf_counter() - start

            targets = [ids[i] for i in work.answer_index]
            vector_of = dict(zip(work.questions, work.query_vectors, strict=True))
            pool = max(50, 5 * k)  # the candidate pool HybridRetriever.search uses by default

            def search(mode: str, with_vector: bool) -> Callable[[str], list[int]]:
                def run(q: str) -> list[int]:
                    hits = retriever.search(q, k, mode=mode, query_vector=vector_of[q] if with_vector else None)  # type: ignore[arg-type]
                    return [h.memory.id for h in hits]

                return run

            def recall_from_text(q: str) -> list[int]:
                return [h.memory.id for h in mind.recall(q, k)]

            latency, recall = {}, {}
            plans: list[tuple[str, Callable[[str], list[int]]]] = [
                ("hybrid", search("hybrid", True)),
                ("keyword", search("keyword", False)),
                ("vector", search("vector", True)),
                ("hybrid_with_embedding", recall_from_text),
            ]
            for name, run in plans:
                latency[name], results = time_queries(f"ours: {name} ({n:,})", work.questions, run)
                recall[name] = recall_at_k(results, targets)

            # Stage breakdown of hybrid search (profiling): which part owns the latency?
            stages: dict[str, Any] = {}
            stages["fts5_bm25"], _ = time_queries(
                f"ours: stage fts5 ({n:,})", work.questions, lambda q: [i for i, _ in mind.store.keyword_search(content_words(q), pool)]
            )
            stages["vector_matvec_topk"], _ = time_queries(
                f"ours: stage matvec ({n:,})", work.questions, lambda q: [i for i, _ in index.search(vector_of[q], pool)]
            )

            def embed_only(q: str) -> list[int]:
                embedder.embed([q])
                return []

            # Alone, with no search in between: compared with hybrid_with_embedding it shows
            # whether numpy's BLAS threads and torch's threads slow each other down.
            stages["query_embedding_only"], _ = time_queries(f"ours: stage query embedding ({n:,})", work.questions, embed_only)
            stages["keyword_candidates"] = summary_counts(
                [len(mind.store.keyword_search(content_words(q), 10**9)) for q in work.questions]
            )

            # Any write bumps the store generation, and the next search reloads every vector.
            after_write = []
            for i in range(WRITE_THEN_QUERY_REPEATS):
                mind.learn_records([NewMemory(text=f"Benchmark write {i}: a late fact about nobody.", source="synthetic")])
                start = time.perf_counter()
                search("hybrid", True)(work.questions[i])
                after_write.append((time.perf_counter() - start) * 1000)
        finally:
            mind.close()
    return {
        "ingest": {
            "memories": n,
            "batch": batch,
            "seconds": ingest_s,
            "per_second": n / ingest_s,
            "batch_seconds": batch_seconds,
            "embedding_lookup_seconds_excluded": lookup,
            "database_bytes": db_bytes,
            "bytes_per_memory": db_bytes / n,
        },
        "index_load_seconds": index_load_s,
        "first_hybrid_query_after_a_write_ms": after_write,
        "latency": latency,
        "stages": stages,
        f"recall@{k}": recall,
    }


def summary_counts(counts: list[int]) -> dict[str, float]:
    """How many rows an FTS5 OR-query matches: the rows bm25() must score for one query."""
    return {"p50": float(np.percentile(counts, 50)), "p95": float(np.percentile(counts, 95)), "mean": statistics.fmean(counts)}


# -- naive baseline ------------------------------------------------------------------------


def tokens(text: str) -> frozenset[str]:
    return frozenset(t for t in re.findall(r"\w+", text.lower()) if t not in STOPWORDS)


class NaiveStore:
    """The obvious first implementation: commit each memory on its own, scan every row to search.

    It uses the same durability settings as ours (WAL, synchronous=FULL), so the ingest
    difference is batching and indexing, not a laxer fsync policy. Rows are tokenised and
    their vectors decoded once at load, which favours the baseline's search."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT NOT NULL, embedding BLOB NOT NULL)")
        self.ids: list[int] = []
        self.token_sets: list[frozenset[str]] = []
        self.vectors: list[np.ndarray] = []

    def add(self, text: str, vector: np.ndarray) -> int:
        self.db.execute("BEGIN")
        cursor = self.db.execute("INSERT INTO memories (text, embedding) VALUES (?, ?)", (text, vector.tobytes()))
        self.db.execute("COMMIT")
        return int(cursor.lastrowid)

    def load(self) -> None:
        rows = self.db.execute("SELECT id, text, embedding FROM memories ORDER BY id").fetchall()
        self.ids = [r[0] for r in rows]
        self.token_sets = [tokens(r[1]) for r in rows]
        self.vectors = [np.frombuffer(r[2], dtype=np.float32) for r in rows]

    def search(self, query: str, query_vector: np.ndarray, k: int, mode: str, pool: int = 50) -> list[int]:
        keyword: list[tuple[float, int]] = []
        vector: list[tuple[float, int]] = []
        if mode != "vector":
            wanted = tokens(query)
            scored = [(len(wanted & toks), mid) for mid, toks in zip(self.ids, self.token_sets)]
            keyword = heapq.nlargest(pool, ((s, mid) for s, mid in scored if s), key=lambda x: (x[0], -x[1]))
        if mode != "keyword":
            scored_v = [(float(np.dot(vec, query_vector)), mid) for mid, vec in zip(self.ids, self.vectors)]
            vector = heapq.nlargest(pool, scored_v, key=lambda x: (x[0], -x[1]))
        fused: dict[int, float] = {}
        for ranked in (keyword, vector):
            for rank, (_, mid) in enumerate(ranked, 1):
                fused[mid] = fused.get(mid, 0.0) + 1.0 / (RRF_K + rank)
        top = sorted(fused, key=lambda mid: (-fused[mid], mid))[:k]
        if top:  # fetch the texts, as ours does, so both return usable memories
            self.db.execute(f"SELECT id, text FROM memories WHERE id IN ({','.join('?' * len(top))})", top).fetchall()
        return top

    def close(self) -> None:
        self.db.close()


def measure_baseline(work: Workload, workdir: Path, k: int, query_count: int) -> dict[str, Any]:
    n = len(work.facts)
    with tempfile.TemporaryDirectory(prefix="lifelong-naive-", dir=workdir) as tmp:
        store = NaiveStore(Path(tmp) / "naive.db")
        try:
            ids = []
            start = time.perf_counter()
            for fact, vector in track(zip(work.facts, work.vectors, strict=True), f"baseline: insert+commit each ({n:,})", n):
                ids.append(store.add(fact.text, vector))
            ingest_s = time.perf_counter() - start
            start = time.perf_counter()
            store.load()
            load_s = time.perf_counter() - start

            questions = work.questions[:query_count]
            vector_of = dict(zip(work.questions, work.query_vectors, strict=True))
            targets = [ids[i] for i in work.answer_index[:query_count]]
            latency, recall = {}, {}
            for mode in ("hybrid", "keyword", "vector"):
                latency[mode], results = time_queries(
                    f"baseline: {mode} scan ({n:,}, {len(questions)} queries)",
                    questions,
                    lambda q, mode=mode: store.search(q, vector_of[q], k, mode),
                )
                recall[mode] = recall_at_k(results, targets)
        finally:
            store.close()
    return {
        "ingest": {"memories": n, "seconds": ingest_s, "per_second": n / ingest_s, "commit_per_memory": True},
        "load_seconds": load_s,
        "queries": len(questions),
        "latency": latency,
        f"recall@{k}": recall,
    }


# -- report --------------------------------------------------------------------------------


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["sizes"]
    sizes = [r["size"] for r in runs]
    fig, (lat, ing) = plt.subplots(1, 2, figsize=(13, 5))

    ours_lines = (
        ("hybrid", "ours hybrid (query vector given)", "o-"),
        ("hybrid_with_embedding", "ours hybrid incl. query embedding", "s-"),
        ("keyword", "ours keyword (FTS5)", "^-"),
        ("vector", "ours vector (matvec)", "v-"),
    )
    for key, label, style in ours_lines:
        lat.plot(sizes, [r["ours"]["latency"][key]["p95_ms"] for r in runs], style, label=label)
    for key, style in (("hybrid", "o--"), ("keyword", "^--"), ("vector", "v--")):
        lat.plot(sizes, [r["baseline"]["latency"][key]["p95_ms"] for r in runs], style, alpha=0.7,
                 label=f"naive scan {key}")
    lat.axhline(TARGET_P95_MS, color="grey", linestyle=":", label=f"target {TARGET_P95_MS:g} ms (hybrid, excl. embedding)")
    lat.set_xscale("log")
    lat.set_yscale("log")
    lat.set_xticks(sizes, [f"{s:,}" for s in sizes])
    lat.minorticks_off()
    lat.set_xlabel("memories")
    lat.set_ylabel("p95 latency per query (ms)")
    lat.set_title("Recall latency p95 (k=%d)" % result["config"]["k"])
    lat.grid(True, which="both", alpha=0.3)
    lat.legend(fontsize=7)

    labels = [f"{s:,}" for s in sizes]
    x = np.arange(len(sizes))
    width = 0.27
    series = (
        ("ours: learn_records, batch %d" % result["config"]["batch"], [r["ours"]["ingest"]["per_second"] for r in runs]),
        ("naive: commit per memory", [r["baseline"]["ingest"]["per_second"] for r in runs]),
        ("ours end to end incl. MiniLM (derived)", [r["ours_end_to_end_per_second"] for r in runs]),
    )
    for i, (label, values) in enumerate(series):
        bars = ing.bar(x + (i - 1) * width, values, width, label=label)
        ing.bar_label(bars, fmt="%.0f", fontsize=7)
    ing.axhline(result["embedding"]["per_second"], color="grey", linestyle=":", label="MiniLM embedding only")
    ing.set_xticks(x, labels)
    ing.set_yscale("log")
    ing.set_ylim(top=max(max(v) for _, v in series) * 8)  # room for the legend above the bars
    ing.set_xlabel("memories")
    ing.set_ylabel("memories per second (log)")
    ing.set_title("Ingest throughput (embeddings precomputed unless stated)")
    ing.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_summary(result: dict[str, Any]) -> None:
    rows = []
    for run in result["sizes"]:
        size = f"{run['size']:,}"
        for key in ("hybrid", "hybrid_with_embedding", "keyword", "vector"):
            lat = run["ours"]["latency"][key]
            rows.append([size, f"ours {key}", lat["n"], lat["p50_ms"], lat["p95_ms"], lat["mean_ms"]])
        for key in ("hybrid", "keyword", "vector"):
            lat = run["baseline"]["latency"][key]
            rows.append([size, f"naive {key}", lat["n"], lat["p50_ms"], lat["p95_ms"], lat["mean_ms"]])
    print_table("Query latency (ms); hybrid/vector/naive use a precomputed query vector", ["size", "system", "queries", "p50", "p95", "mean"], rows)
    print_table(
        "Ingest (memories/s)",
        ["size", "ours store", "naive store", "ours incl. MiniLM (derived)", "index load s", "1st query after write ms"],
        [
            [f"{r['size']:,}", r["ours"]["ingest"]["per_second"], r["baseline"]["ingest"]["per_second"],
             r["ours_end_to_end_per_second"], r["ours"]["index_load_seconds"],
             statistics.median(r["ours"]["first_hybrid_query_after_a_write_ms"])]
            for r in result["sizes"]
        ],
    )
    largest = result["sizes"][-1]
    p95 = largest["ours"]["latency"]["hybrid"]["p95_ms"]
    verdict = "met" if p95 < TARGET_P95_MS else "NOT met"
    print_table(
        "Machine speed probes (a slow spell shows as larger numbers)",
        ["when", "python loop ms", "numpy matvec 20k ms", "MiniLM 1 sentence ms"],
        [[p["when"], p["python_loop_1M_ms"], p["numpy_matvec_20k_ms"], p["minilm_one_sentence_ms"]] for p in result["speed_probes"]],
    )
    print(f"MiniLM embedding alone: {result['embedding']['per_second']:.0f} sentences/s")
    print(f"hybrid p95 at {largest['size']:,} memories, query vector given: {p95:.1f} ms "
          f"(target < {TARGET_P95_MS:g} ms: {verdict})")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated integers, not {text!r}") from None
    if not sizes or sizes[0] < 10:
        raise argparse.ArgumentTypeError("--sizes needs sizes of at least 10")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(
            "Ingest throughput and recall latency (ours vs a naive commit-per-row + linear-scan baseline) "
            "on synthetic facts. Expected full run on 2 CPU cores: about 9 minutes the first time "
            "(7 of them computing the 100k corpus embeddings), about 2 minutes once they are cached; "
            "--quick: 30 seconds to 1 minute."
        )
    )
    parser.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES), help="comma-separated corpus sizes (default: 1000,10000,100000)")
    parser.add_argument("--quick", action="store_true", help="sizes 200,1000 (overrides --sizes)")
    parser.add_argument("--queries", type=int, default=200, help="queries per size and mode (default: 200)")
    parser.add_argument("--baseline-row-budget", type=int, default=2_000_000,
                        help="naive scan: at most this many row visits per mode, i.e. fewer queries at large sizes "
                             "(default 2,000,000: 20 queries at 100k), never fewer than 20")
    parser.add_argument("--batch", type=int, default=1_000, help="memories per learn_records call (default: 1000)")
    parser.add_argument("--k", type=int, default=5, help="results per query (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic facts and queries (default: 0)")
    parser.add_argument("--embed-sample", type=int, default=1_000, help="sentences timed for embedding throughput (default: 1000)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "lifelong-bench-cache",
                        help="where corpus embeddings are cached (default: $TMPDIR/lifelong-bench-cache)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary databases live (its filesystem sets fsync cost; default: $TMPDIR)")
    args = parser.parse_args()
    sizes = list(QUICK_SIZES) if args.quick else args.sizes
    if args.queries < 1 or args.batch < 1 or args.k < 1:
        parser.error("--queries, --batch and --k must be positive")

    started = time.perf_counter()
    out = results_dir(STUDY)
    model = MiniLMEmbedder()
    with status("loading the embedder"):
        model.embed(["warm-up"])
    with status(f"generating {max(sizes):,} synthetic facts (seed {args.seed})"):
        facts = FactGenerator(args.seed).take(max(sizes))
    texts = [f.text for f in facts]
    corpus, cache_info = corpus_embeddings(texts, args.seed, args.cache_dir, model)

    sample = texts[: min(args.embed_sample, len(texts))]
    with status(f"timing MiniLM on {len(sample):,} sentences"):
        start = time.perf_counter()
        model.embed(sample)
        embed_s = time.perf_counter() - start
    embedding = {"sample": len(sample), "seconds": embed_s, "per_second": len(sample) / embed_s,
                 "batch_size": model.batch_size, "corpus": cache_info}

    embedder = LookupEmbedder(model, texts, corpus)
    probes = [probe(model, "start")]
    runs = []
    for size in sizes:
        console().rule(f"{size:,} memories")
        queries = sample_queries(facts[:size], args.queries, args.seed)
        questions = [q for q, _ in queries]
        with status(f"embedding {len(questions)} queries"):
            query_vectors = model.embed(questions)
        work = Workload(facts[:size], corpus[:size], questions, query_vectors, [i for _, i in queries])
        ours = measure_ours(work, embedder, args.workdir, args.batch, args.k)
        baseline_queries = min(len(questions), max(20, args.baseline_row_budget // size))
        baseline = measure_baseline(work, args.workdir, args.k, baseline_queries)
        store_rate = ours["ingest"]["per_second"]
        runs.append({
            "size": size,
            "queries": len(questions),
            "ours": ours,
            "baseline": baseline,
            # learn_records = embed then store, sequentially, so the rates add as times do.
            "ours_end_to_end_per_second": 1.0 / (1.0 / store_rate + 1.0 / embedding["per_second"]),
            "ours_vs_naive_ingest": store_rate / baseline["ingest"]["per_second"],
            "naive_vs_ours_hybrid_p50": baseline["latency"]["hybrid"]["p50_ms"] / ours["latency"]["hybrid"]["p50_ms"],
        })
        probes.append(probe(model, f"after {size}"))

    result = {
        "study": STUDY,
        "config": {**{k: v for k, v in vars(args).items() if k not in ("sizes",)}, "sizes": sizes,
                   "rrf_k": RRF_K, "warmup_queries": WARMUP_QUERIES},
        "corpus": {
            "facts": len(facts),
            "mean_words": statistics.fmean(len(t.split()) for t in texts),
            "vocabulary": len({w for t in texts for w in re.findall(r"\w+", t.lower())}),
            "examples": [{"text": f.text, "question": f.questions[0]} for f in facts[:5]],
        },
        "embedding": embedding,
        "workdir_filesystem": filesystem_of(args.workdir),
        "speed_probes": probes,
        "target": {"hybrid_p95_ms": TARGET_P95_MS, "size": sizes[-1],
                   "met": runs[-1]["ours"]["latency"]["hybrid"]["p95_ms"] < TARGET_P95_MS},
        "sizes": runs,
        "machine": machine_info(),
    }
    result["wall_seconds"] = time.perf_counter() - started
    write_json(out / "results.json", result)
    plot(result, out / "latency.png")
    print_summary(result)
    print(f"wall time {result['wall_seconds']:.0f}s; results in {out}")


if __name__ == "__main__":
    main()
