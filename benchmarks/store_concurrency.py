"""Many processes learning and recalling against one PostgreSQL mind at once, then counted:
no memory lost, none stored twice.

--workers processes (default 8) run for --seconds (default 60). Each loops: learn a batch of 1-4
memories of its own plus, every third batch, one of 20 texts every worker also writes (the
store must keep one row per text), then recall one of its earlier memories by its own words.
Each worker records every id the store gave it. Afterwards: every text any worker learned is
in the store exactly once, every id a worker was given holds the text it wrote, and recalls
that missed their memory are counted. Real MiniLM embeddings, the default privacy and
poisoning screens: a worker does what `lifelong learn` and `lifelong recall` do.

Writes results/store_concurrency/<UTC>/results.json and store_concurrency.png.

    .venv/bin/python benchmarks/store_concurrency.py [--workers 8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, write_json
from store_backends import start_postgres

SHARED_TEXTS = [f"The shared depot number {i} of the Korvath line opens at {6 + i % 5} in the morning." for i in range(20)]
WORDS = "amber basalt cobalt dune ember fjord garnet harbor indigo jasper kestrel lagoon meadow nectar onyx".split()


def worker(index: int, mind_path: str, seconds: float, out_path: str) -> None:
    """One process: learn and recall until the time is up, then write what it did as JSON."""
    from lifelong.memory.records import NewMemory
    from lifelong.mind import Mind

    rng = random.Random(index)
    learned: list[tuple[str, int]] = []
    recalls = misses = batches = 0
    errors: list[str] = []
    with Mind.open(Path(mind_path)) as mind:
        deadline = time.monotonic() + seconds
        counter = 0
        while time.monotonic() < deadline:
            texts = []
            for _ in range(rng.randint(1, 4)):
                counter += 1
                texts.append(f"Worker {index} note {counter}: the {rng.choice(WORDS)} {rng.choice(WORDS)} crate goes to bay "
                             f"w{index}n{counter}.")
            if batches % 3 == 0:
                texts.append(rng.choice(SHARED_TEXTS))
            try:
                report = mind.learn_records([NewMemory(t, source=f"worker-{index}") for t in texts])
                learned += [(t, r.id) for t, r in zip(texts, report.results, strict=True)]
                batches += 1
                own = [(t, i) for t, i in learned if t.startswith(f"Worker {index} ")]
                text, memory_id = rng.choice(own)
                hits = mind.recall(text.split(": ")[1], k=5)  # its own words, without the note's header
                recalls += 1
                misses += memory_id not in [h.memory.id for h in hits]
            except Exception as exc:  # noqa: BLE001 - counted and reported: the point is to see any
                errors.append(f"{type(exc).__name__}: {exc}")
    Path(out_path).write_text(json.dumps({"worker": index, "learned": learned, "batches": batches, "recalls": recalls,
                                          "recall_misses": misses, "errors": errors}), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgres-url", default=None, help="an existing server (default: start one from the pgserver wheel)")
    args = parser.parse_args()

    from lifelong.mind import Mind

    work = Path(tempfile.mkdtemp(prefix="lifelong-concurrency-"))
    server = None
    url = args.postgres_url
    if url is None:
        url, server = start_postgres(work)
    mind_path = work / "mind"
    Mind.init(mind_path, store=url, schema=f"concurrency_{os.getpid()}").close()
    context = multiprocessing.get_context("spawn")  # each worker a fresh interpreter, as separate commands are
    started = time.perf_counter()
    procs = [context.Process(target=worker, args=(i, str(mind_path), args.seconds, str(work / f"worker-{i}.json")))
             for i in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - started
    reports = [json.loads((work / f"worker-{i}.json").read_text()) for i in range(args.workers)]

    with Mind.open(mind_path) as mind:
        stored = mind.memories()
    by_text = Counter(m.text for m in stored)
    text_of = {m.id: m.text for m in stored}
    submitted = {t for r in reports for t, _ in r["learned"]}
    given = [(t, i) for r in reports for t, i in r["learned"]]
    counts = {
        "memories_stored": len(stored),
        "distinct_texts_learned": len(submitted),
        "lost": len(submitted - set(by_text)),
        "duplicated": sum(c - 1 for c in by_text.values() if c > 1),
        "ids_not_holding_their_text": sum(text_of.get(i) != t for t, i in given),
        "shared_text_rows": sum(by_text[t] for t in SHARED_TEXTS),
        "shared_texts_learned": len(submitted & set(SHARED_TEXTS)),
        "learn_batches": sum(r["batches"] for r in reports),
        "recalls": sum(r["recalls"] for r in reports),
        "recall_misses": sum(r["recall_misses"] for r in reports),
        "errors": [e for r in reports for e in r["errors"]],
    }
    if server is not None:
        server.cleanup()
    out = results_dir("store_concurrency")
    result = {"study": "store_concurrency", "config": vars(args) | {"postgres_url": "pgserver wheel" if server else "given"},
              "wall_seconds": wall, "counts": counts,
              "per_worker": [{k: r[k] for k in ("worker", "batches", "recalls", "recall_misses")} | {"learned": len(r["learned"])}
                             for r in reports],
              "machine": machine_info()}
    write_json(out / "results.json", result)
    _plot(result, out / "store_concurrency.png")
    print_table(f"{args.workers} processes, {args.seconds:g} s, one PostgreSQL mind",
                ["stored", "distinct learned", "lost", "duplicated", "wrong ids", "batches", "recalls", "recall misses", "errors"],
                [[counts["memories_stored"], counts["distinct_texts_learned"], counts["lost"], counts["duplicated"],
                  counts["ids_not_holding_their_text"], counts["learn_batches"], counts["recalls"], counts["recall_misses"],
                  len(counts["errors"])]])
    print(f"results: {out}")


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["per_worker"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar([f"w{r['worker']}" for r in rows], [r["learned"] for r in rows], label="memories learned")
    ax.bar([f"w{r['worker']}" for r in rows], [r["recalls"] for r in rows], alpha=0.6, label="recalls")
    c = result["counts"]
    ax.set_title(f"{len(rows)} processes, {result['config']['seconds']:g} s: lost {c['lost']}, duplicated {c['duplicated']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
