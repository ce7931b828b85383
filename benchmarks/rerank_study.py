"""Can the served language model rerank recall's candidates? Query likelihood on TOFU.

Hybrid recall@5 on the 300 TOFU dev questions is 0.900 while recall@10 is 0.960: the right
memory is often found but ranked 6th-10th. No cross-encoder reranker installs offline from a
package registry, but `ask` has a language model loaded anyway. This study reranks the hybrid
top N by query likelihood (UPR, Sachan et al. 2022): log P(question | "Note: <memory>, write a
question it answers"), the question's tokens scored by the model with each candidate in its
prompt, in one padded batch per question. It reports, side by side in one run, recall@1/@5 of
hybrid alone, of the likelihood order, and of both fused by reciprocal rank, and the time the
reranking adds per question.

    .venv/bin/python benchmarks/rerank_study.py [--candidates 10] [--data ../shared/data]

Writes results/rerank_study/<UTC>/results.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import quantiles

import torch
from _common import machine_info, results_dir, write_json

from lifelong.bench.arms import make_mind
from lifelong.bench.context import BenchSettings
from lifelong.bench.data import BenchData
from lifelong.bench.runner import load_base
from lifelong.learn.drift import continuation_log_probs
from lifelong.learn.synthesis import MODEL_QUESTION_REQUEST
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.records import NewMemory
from lifelong.memory.retrieval import RRF_K
from lifelong.model.language_model import LanguageModel
from lifelong.progress import console, track


@torch.inference_mode()
def question_likelihoods(lm: LanguageModel, question: str, notes: list[str]) -> list[float]:
    """Sum of log P(question token) with each note in the prompt, one padded batch."""
    asked = lm.tokenizer(question, add_special_tokens=False)["input_ids"]
    prompts = [lm.encode(lm.format_chat([{"role": "user", "content": f"Note: {n}\n\n{MODEL_QUESTION_REQUEST}"}])) for n in notes]
    log_probs = continuation_log_probs(lm.model, [(p + asked, len(p)) for p in prompts], lm.tokenizer.pad_token_id)
    targets = torch.tensor(asked).repeat(len(prompts)).unsqueeze(-1)
    return log_probs.gather(-1, targets).view(len(prompts), len(asked)).sum(dim=1).tolist()


def fused(first: list[int], second: list[int]) -> list[int]:
    """Reciprocal-rank fusion of two orders of the same ids, with the retriever's constant."""
    score = {i: 1 / (RRF_K + first.index(i) + 1) + 1 / (RRF_K + second.index(i) + 1) for i in first}
    return sorted(first, key=lambda i: -score[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=10, help="hybrid hits the model reranks (default 10)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = BenchData(args.data).fact_rows()
    lm, embedder = load_base(BenchSettings().model), MiniLMEmbedder()
    out = results_dir("rerank_study")
    orders: dict[str, list[list[int]]] = {"hybrid": [], "likelihood": [], "hybrid + likelihood (RRF)": []}
    targets, rerank_ms = [], []
    with tempfile.TemporaryDirectory(prefix="rerank-") as scratch:
        mind = make_mind(Path(scratch) / "mind", lm, embedder, [])
        learned = mind.learn_records([NewMemory(r["answer"], str(r["id"]), "user", "default", "fact", None) for r in rows])
        targets = [w.id for w in learned.results]
        for row in track(rows, "rerank: TOFU questions", len(rows)):
            hits = mind.retriever.search(row["question"], args.candidates, mode="hybrid")
            ids = [h.memory.id for h in hits]
            start = time.perf_counter()
            scores = question_likelihoods(lm, row["question"], [h.memory.text for h in hits])
            rerank_ms.append((time.perf_counter() - start) * 1000)
            by_likelihood = [i for _, i in sorted(zip(scores, ids, strict=True), key=lambda pair: -pair[0])]
            orders["hybrid"].append(ids)
            orders["likelihood"].append(by_likelihood)
            orders["hybrid + likelihood (RRF)"].append(fused(ids, by_likelihood))
        mind.close()
    n = len(rows)
    recall = {name: {f"recall@{k}": sum(t in o[:k] for t, o in zip(targets, found, strict=True)) / n for k in (1, 5, args.candidates)}
              for name, found in orders.items()}
    cuts = quantiles(rerank_ms, n=20)
    result = {"questions": n, "candidates": args.candidates, "recall": recall,
              "rerank_ms": {"p50": cuts[9], "p95": cuts[18]}, "model": lm.name, "machine": machine_info()}
    write_json(out / "results.json", result)
    for name, values in recall.items():
        console().print(f"{name:>28}: " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    console().print(f"reranking adds p50 {cuts[9]:.0f} ms, p95 {cuts[18]:.0f} ms per question; results: {out}")


if __name__ == "__main__":
    main()
