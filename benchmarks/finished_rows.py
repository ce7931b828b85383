"""Does dropping finished rows from a greedy batch speed up the gate's decoding, with the same
answers? The gate asks "Complete the sentence: ..." probes closed-book and with their note in
the prompt, up to 48 tokens each, in shared batches; `generate` computes every row until the
last stops, while `greedy_decode` drops rows once they stop (model/greedy_decoding.py).

Both paths decode the same prompts, alternated `--repeats` times, and every answer is
compared. Prompts: acquisition probes of TOFU facts on the base model, or with `--mind PATH`
a mind's own probes through its active library (each row on its module, as in the gate).
Writes results/finished_rows/<time>/results.json.

    .venv/bin/python benchmarks/finished_rows.py --data ../shared/data [--facts 40] [--mind PATH]

About 4 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import machine_info, print_table, results_dir, write_json

from lifelong.evaluate.probes import PROBE_ANSWER_TOKENS, acquisition_probes, probe_messages
from lifelong.memory.records import Memory
from lifelong.model import language_model
from lifelong.model.greedy_decoding import plain_greedy


def tofu_memories(data: Path, count: int) -> list[Memory]:
    rows = [json.loads(line) for line in (data / "tofu_authors_dev.jsonl").read_text().splitlines()][:count]
    return [Memory(i, r["answer"], "tofu", "user", "default", "fact", None, 0.0, 0.0, None, None, "") for i, r in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--facts", type=int, default=40, help="facts whose probes are asked")
    parser.add_argument("--mind", type=Path, default=None, help="ask a mind's own probes through its active library")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    if args.mind is not None:
        from lifelong import Mind

        mind = Mind.open(args.mind)
        lm = mind.language_model
        memories = list(mind.memories())[: args.facts]
    else:
        from lifelong.model.loader import load_model

        lm = load_model("smollm2-135m")
        memories = tofu_memories(args.data, args.facts)
    probes = acquisition_probes(memories)
    notes = {m.id: m for m in memories}
    prompts = [probe_messages(p, None) for p in probes] + [probe_messages(p, notes) for p in probes]
    lm.generate_batch(prompts[:2], max_new_tokens=4)  # the first call pays kernel selection
    seconds: dict[str, list[float]] = {"generate": [], "finished rows leave": []}
    answers: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        for arm in (("generate", "finished rows leave") if repeat % 2 == 0 else ("finished rows leave", "generate")):
            language_model.FINISHED_ROWS_LEAVE = arm == "finished rows leave"
            start = time.perf_counter()
            answers[arm] = lm.generate_batch(prompts, max_new_tokens=PROBE_ANSWER_TOKENS)
            seconds[arm].append(time.perf_counter() - start)
            print(f"repeat {repeat + 1}, {arm}: {seconds[arm][-1]:.1f} s for {len(prompts)} answers", flush=True)
    language_model.FINISHED_ROWS_LEAVE = True
    differ = sum(a != b for a, b in zip(answers["generate"], answers["finished rows leave"], strict=True))
    medians = {arm: statistics.median(values) for arm, values in seconds.items()}
    out = results_dir("finished_rows")
    write_json(out / "results.json", {
        "study": "finished_rows", "machine": machine_info(), "source": str(args.mind) if args.mind else "tofu dev, base model",
        "facts": len(memories), "probes": len(probes), "prompts": len(prompts), "answer_tokens": PROBE_ANSWER_TOKENS,
        "seconds": seconds, "median_seconds": medians, "speedup": medians["generate"] / medians["finished rows leave"],
        "answers_differing": differ, "plain_greedy": plain_greedy(lm.model),
        "reply_tokens": [len(lm.encode(a)) for a in answers["finished rows leave"]]})
    print_table("Greedy decoding of the gate's probes", ["arm", "median s", "answers", "answers differing"],
                [[arm, medians[arm], len(prompts), differ] for arm in seconds])
    print(f"speedup {medians['generate'] / medians['finished rows leave']:.2f}x")
    print(out / "results.json")


if __name__ == "__main__":
    main()
