"""Load on `lifelong serve` over loopback: concurrent clients for a fixed time, batched against
one request at a time in the same run.

For each concurrency (default 16 and 64) and each server mode (batched: requests arriving
within 10 ms share a `generate_batch`; one at a time: the same server with batches of one),
that many client threads post chat completions (retrieval on, turns not remembered, greedy,
--max-tokens each) for --seconds; then the next setting. Reported per setting: requests,
errors, latency p50/p95, completion tokens/s, mean batch size, and the server process's
resident memory sampled every second (flat means no leak). Writes
results/serve_load/<UTC timestamp>/results.json and serve_load.png.

    .venv/bin/python benchmarks/serve_load.py [--model smollm2-135m] [--seconds 60] [--clients 16,64]

Bounded in time: about (2 modes x len(clients) x seconds) plus model loading.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _common import machine_info, print_table, results_dir, write_json

QUESTIONS = ["Where is the Korvath office?", "When did the Korvath bridge open?", "Who designed the Vellmar Observatory?",
             "What is the capital of France?", "Who wrote Hamlet?", "What does the Korvath ferry carry?"]
FACTS = ["The Korvath office is in Lisbon.", "The Korvath bridge opened in 1964.",
         "The Vellmar Observatory was designed by Ilse Brandvik.", "The Korvath ferry carries grain and passengers."]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, key: str, clients: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    latencies: list[float] = []
    tokens: list[int] = []
    errors: list[str] = []
    rss: list[float] = []
    stop = time.monotonic() + seconds
    guard = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {key}"}) as http:
            turn = index
            while time.monotonic() < stop:
                body = {"messages": [{"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]}], "max_tokens": max_tokens,
                        "lifelong": {"remember": False}}
                started = time.perf_counter()
                try:
                    response = http.post("/v1/chat/completions", json=body)
                    ok = response.status_code == 200
                    with guard:
                        if ok:
                            latencies.append(time.perf_counter() - started)
                            tokens.append(response.json()["usage"]["completion_tokens"])
                        else:
                            errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    with guard:
                        errors.append(repr(exc))
                turn += 1

    def sample() -> None:
        while time.monotonic() < stop:
            rss.append(rss_mib())
            time.sleep(1)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=sample)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started  # includes the requests in flight when time ran out
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")  # noqa: E731
    return {"clients": clients, "seconds": wall, "requests": len(latencies), "errors": len(errors), "error_examples": errors[:5],
            "latency_p50_s": pick(0.5), "latency_p95_s": pick(0.95), "mean_latency_s": statistics.fmean(ordered) if ordered else None,
            "completion_tokens_per_s": sum(tokens) / wall, "requests_per_s": len(latencies) / wall,
            "rss_mib": rss, "rss_growth_mib": (rss[-1] - rss[0]) if len(rss) > 1 else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a packaged model name, or tiny (a random model: checks the harness)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    from lifelong.memory.embedder import MiniLMEmbedder
    from lifelong.mind import Mind
    from lifelong.serve.app import create_app
    from lifelong.serve.keys import KeyRing
    from lifelong.serve.live import serving

    if args.model == "tiny":
        from lifelong.model.tiny import build_tiny_model

        lm = build_tiny_model()
    else:
        from lifelong.model.loader import load_model

        lm = load_model(args.model)
    embedder = MiniLMEmbedder()
    rows: dict[str, dict[str, Any]] = {}
    batches: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "server"
        Mind.init(root, embedder=embedder, language_model=lm).close()
        ring = KeyRing(root)
        key = ring.create("load")
        ring.close()
        for mode, max_batch in (("batched", 16), ("one at a time", 1)):
            app = create_app(root, language_model=lm, embedder=embedder, max_batch=max_batch)
            with serving(app) as url:
                httpx.post(f"{url}/v1/memories", json={"texts": FACTS}, headers={"Authorization": f"Bearer {key}"},
                           timeout=600).raise_for_status()
                for clients in (int(c) for c in args.clients.split(",")):
                    print(f"{mode}, {clients} clients, {args.seconds:.0f} s ...", flush=True)
                    before = len(app.state.batcher.batches)
                    rows[f"{mode}, {clients} clients"] = {"mode": mode, **load(url, key, clients, args.seconds, args.max_tokens)}
                    batches[f"{mode}, {clients} clients"] = app.state.batcher.batches[before:]
    for name, row in rows.items():
        sizes = batches[name]
        row["mean_batch"] = statistics.fmean(sizes) if sizes else 0.0
    for clients in (int(c) for c in args.clients.split(",")):
        batched, single = rows[f"batched, {clients} clients"], rows[f"one at a time, {clients} clients"]
        batched["batching_gain_tokens_per_s"] = (batched["completion_tokens_per_s"] / single["completion_tokens_per_s"]
                                                 if single["completion_tokens_per_s"] else float("nan"))
    out = results_dir("serve_load")
    write_json(out / "results.json", {"machine": machine_info(), "model": lm.name, "seconds": args.seconds,
                                      "max_tokens": args.max_tokens, "rows": rows})
    print_table("serve load", ["setting", "requests", "errors", "p50 s", "p95 s", "tokens/s", "mean batch", "RSS growth MiB"],
                [[name, r["requests"], r["errors"], r["latency_p50_s"], r["latency_p95_s"], r["completion_tokens_per_s"],
                  r["mean_batch"], r["rss_growth_mib"]] for name, r in rows.items()])
    plot(rows, out)
    print(out)


def plot(rows: dict[str, dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    names = list(rows)
    axes[0].bar(names, [rows[n]["completion_tokens_per_s"] for n in names])
    axes[0].set_title("completion tokens/s")
    axes[1].bar(names, [rows[n]["latency_p95_s"] for n in names])
    axes[1].set_title("latency p95 (s)")
    for name in names:
        axes[2].plot(rows[name]["rss_mib"], label=name)
    axes[2].set_title("server RSS (MiB), one sample a second")
    axes[2].legend(fontsize=7)
    for ax in axes[:2]:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "serve_load.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
