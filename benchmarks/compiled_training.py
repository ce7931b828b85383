"""The trainer with and without compiled decoder layers (`TrainConfig.compile_layers`, `lifelong
sleep --compile`), on the examples a real sleep wrote, alternating the two so a machine whose
speed drifts within the hour treats both alike.

Each run trains a fresh LoRA module from the same seed for --epochs passes. Dynamo keeps what it
compiled for the decoder layers' shared code for the rest of the process, so a short compiled
warm-up run (8 examples, 1 epoch) pays the compile (from inductor's on-disk cache after a
machine's first) and the timed compiled runs do not: the report gives the steps' speed-up and
the speed-up a new process would see, the warm-up's seconds added to the compiled median.
Writes results/compiled_training/<UTC timestamp>/results.json.

    .venv/bin/python benchmarks/compiled_training.py MIND/versions/vN/training_data.jsonl [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from _common import machine_info, print_table, results_dir, speed_probe, write_json

from lifelong.bench.flops import peaks
from lifelong.consolidate import read_examples
from lifelong.learn.strategies import parse_strategy
from lifelong.learn.trainer import TrainConfig, attach_lora, train_module
from lifelong.model.language_model import LanguageModel, weight_sharing_copy
from lifelong.model.loader import load_model


def train_once(lm: LanguageModel, examples: list, config: TrainConfig) -> dict[str, float]:
    candidate = attach_lora(LanguageModel(weight_sharing_copy(lm.model), lm.tokenizer, lm.name, lm.needs_bos), config)
    stats = train_module(lm, candidate, examples, parse_strategy("routed+context"), config)
    return {"seconds": stats.seconds, "tokens": stats.tokens, "tokens_per_second": stats.tokens_per_second,
            "final_loss": stats.final_loss, "compiled": stats.compiled_layers, "precision": stats.precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_data", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    lm = load_model()
    examples = read_examples(args.training_data)
    eager = TrainConfig(epochs=args.epochs)
    compiled = replace(eager, compile_layers=True)
    probe, peak = speed_probe(), peaks()
    warm_up = train_once(lm, examples[:8], replace(compiled, epochs=1))  # pays the compile
    runs: dict[str, list[dict[str, float]]] = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        runs["eager"].append(train_once(lm, examples, eager))
        runs["compiled"].append(train_once(lm, examples, compiled))
    rows = {name: {"median_s": statistics.median(r["seconds"] for r in each),
                   "runs_s": [r["seconds"] for r in each], "tokens": each[0]["tokens"],
                   "median_tokens_per_second": statistics.median(r["tokens_per_second"] for r in each),
                   "final_loss": [r["final_loss"] for r in each]} for name, each in runs.items()}
    speed_up = rows["eager"]["median_s"] / rows["compiled"]["median_s"]
    with_compile = rows["eager"]["median_s"] / (rows["compiled"]["median_s"] + warm_up["seconds"])
    out = results_dir("compiled_training")
    write_json(out / "results.json", {"study": "compiled_training", "machine": machine_info(), "speed_probe": probe,
                                       "speed_probe_after": speed_probe(), "matmul_peak": {"before": peak, "after": peaks()}, "examples": len(examples),
                                       "epochs": args.epochs, "warm_up": warm_up, "rows": rows,
                                       "speed_up_steps": speed_up, "speed_up_new_process": with_compile})
    print_table("compiled_training", ["trainer", "median s", "runs s", "tokens", "tokens/s"],
                [[name, r["median_s"], ", ".join(f"{s:.1f}" for s in r["runs_s"]), r["tokens"], r["median_tokens_per_second"]]
                 for name, r in rows.items()])
    print(f"compiled: {speed_up:.2f}x the eager trainer's steps; {with_compile:.2f}x with the warm-up's compile "
          f"({warm_up['seconds']:.1f} s), as a new process pays it; {out}")


if __name__ == "__main__":
    main()
