"""How many prompts should one generation batch hold on this CPU? Greedy answers to TOFU
questions, closed-book and with three notes in the prompt (the shapes the gate, synthesis and
the benchmarks' arms generate), at several fixed batch sizes and with the default batching
(up to 64 rows within a prompt-token budget): wall seconds per answer, and how many answers
differ from those of batches of 16 (the fixed size before), since a batch's padding and
shape can move a near-tie token.

Decoding one token reads every weight once, so a batch shares that cost across its rows; a
gate of 20 probes ran as batches of 16 and 4 before. Writes
results/decode_batching/<time>/results.json.

    .venv/bin/python benchmarks/decode_batching.py [--data ../shared/data] [--prompts 64]

About 8 minutes on 2 CPU cores with the default sizes (3 with --sizes 16).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import machine_info, print_table, results_dir, write_json

from lifelong.memory.records import Memory
from lifelong.model import language_model
from lifelong.model.loader import load_model
from lifelong.prompt import build_messages, closed_book

DEFAULT_BATCH = 16  # LanguageModel.generate_batch's fixed batch before generation_batches
ANSWER_TOKENS = 48  # the gate's (evaluate/probes.PROBE_ANSWER_TOKENS)


def note(index: int, text: str) -> Memory:
    return Memory(index, text, "tofu", "user", "default", "fact", None, 0.0, 0.0, None, None, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--prompts", type=int, default=64, help="prompts per shape")
    parser.add_argument("--sizes", default="1,8,16,32,64", help="batch sizes; size 1 runs on the first 16 prompts only")
    args = parser.parse_args()

    rows = [json.loads(line) for line in (args.data / "tofu_authors_dev.jsonl").read_text().splitlines()][: args.prompts + 2]
    shapes = {
        "closed-book": [closed_book(r["question"]) for r in rows[: args.prompts]],
        "three notes": [build_messages(r["question"], [note(i, rows[j]["answer"]) for j in (i, i + 1, i + 2)])
                        for i, r in enumerate(rows[: args.prompts])],
    }
    lm = load_model("smollm2-135m")
    lm.generate_batch(shapes["closed-book"][:2], max_new_tokens=4)  # first call pays kernel selection
    sizes: list[int | str] = [int(s) for s in args.sizes.split(",")] + ["default"]
    budget = language_model.GENERATION_BATCH_TOKENS
    results: dict[str, dict[str, dict[str, float]]] = {}
    for shape, prompts in shapes.items():
        language_model.GENERATION_BATCH_TOKENS = 10**9  # fixed row counts: no token budget
        reference = lm.generate_batch(prompts, max_new_tokens=ANSWER_TOKENS, batch_size=DEFAULT_BATCH)
        results[shape] = {}
        for size in sizes:
            asked = prompts[:16] if size == 1 else prompts
            # "default": what generate_batch does now (up to GENERATION_BATCH_ROWS rows within the token budget)
            language_model.GENERATION_BATCH_TOKENS = budget if size == "default" else 10**9
            start = time.perf_counter()
            answers = lm.generate_batch(asked, max_new_tokens=ANSWER_TOKENS,
                                        batch_size=language_model.GENERATION_BATCH_ROWS if size == "default" else size)
            seconds = time.perf_counter() - start
            language_model.GENERATION_BATCH_TOKENS = budget
            results[shape][str(size)] = {"prompts": len(asked), "seconds_per_answer": seconds / len(asked),
                                         "differ_from_batch_16": sum(a != b for a, b in zip(answers, reference, strict=False))}
            print(f"{shape}, batch {size}: {seconds / len(asked):.3f} s per answer", flush=True)
    language_model.GENERATION_BATCH_TOKENS = budget
    out = results_dir("decode_batching")
    write_json(out / "results.json", {"study": "decode_batching", "machine": machine_info(), "answer_tokens": ANSWER_TOKENS,
                                      "reference_batch": DEFAULT_BATCH, "default_rows": language_model.GENERATION_BATCH_ROWS,
                                      "default_tokens": budget, "results": results})
    print_table("Generation batch size", ["shape", "batch", "prompts", "s per answer", "answers differing from batch 16"],
                [[shape, size, r["prompts"], r["seconds_per_answer"], r["differ_from_batch_16"]]
                 for shape, by_size in results.items() for size, r in by_size.items()])
    print(out / "results.json")


if __name__ == "__main__":
    main()
