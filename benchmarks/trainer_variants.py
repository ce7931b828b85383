"""The default trainer against one variant of it, on the examples a real sleep wrote,
alternating the two so a machine whose speed drifts within the hour treats both alike.

Variants: `compiled` (`TrainConfig.compile_layers`, `lifelong sleep --compile`),
`eager-attention` (`TrainConfig.attention="eager"`: transformers' matmul-and-softmax attention
in place of PyTorch's fused kernel, for the packed rows' block masks) and `unshared-prefixes`
(`TrainConfig.share_prefixes=False`: every packed example computes its own chat-template
opening, as the trainer did before shared openings; a speed-up below 1 is the default's gain) and
`bf16-attention` (`TrainConfig.attention="sdpa"`: the fused kernel in bf16 under autocast, as the
trainer ran before fp32 attention became the default; below 1 is the default's gain), `repeated-kv`
(`TrainConfig.attention="sdpa_fp32_repeated_kv"`: the fp32 kernel through transformers' sdpa,
which repeats grouped keys and values to every query head, as before the default kept them
unrepeated) and `kept-activation` (`TrainConfig.recompute_gated_activation=False`: each MLP keeps
its activation's output for the backward pass, learn/gated_mlp.py), `whole-batch`
(`TrainConfig.micro_batch_rows=0`: a batch's packed rows in one forward and backward pass, where
fp32 training now runs them one at a time) and `one-row` (`micro_batch_rows=1` in either
precision), `last-15-layers` (`TrainConfig.trainable_layers=15`, `lifelong sleep --layers 15`:
LoRA on the last 15 of SmolLM2-135M's 30 decoder layers, so the backward pass stops halfway down;
it learns less per epoch, benchmarks/epoch_curve.py), `answer-gradients`
(`TrainConfig.answer_gradients_only=True`, `sleep --answer-gradients-only`: the prompts run once
without gradients and only the scored positions forward and backward, learn/cached_prompts.py;
a different gradient, so the final losses differ). Each run trains a fresh
LoRA module from the same seed for --epochs passes; the final losses show the two learned alike.

Dynamo keeps what it compiled for the decoder layers' shared code for the rest of the process,
so for `compiled` a short warm-up run (8 examples, 1 epoch) pays the compile (from inductor's
on-disk cache after a machine's first) and the timed runs do not: the report gives the steps'
speed-up and the speed-up a new process would see, the warm-up's seconds added to the variant's
median. Writes results/trainer_variants/<UTC timestamp>/results.json (the first runs of the
compiled variant, under this script's earlier name, are in results/compiled_training/).

    .venv/bin/python benchmarks/trainer_variants.py MIND/versions/vN/training_data.jsonl [--variant compiled|eager-attention|unshared-prefixes|bf16-attention|repeated-kv|kept-activation|whole-batch|one-row|last-15-layers|answer-gradients] [--epochs 2] [--repeats 2] [--examples N]
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
from lifelong.learn.training_attention import REPEATED_KV_FP32_SDPA
from lifelong.model.language_model import LanguageModel, weight_sharing_copy
from lifelong.model.loader import load_model

VARIANTS = {"compiled": {"compile_layers": True}, "eager-attention": {"attention": "eager"},
            "unshared-prefixes": {"share_prefixes": False}, "bf16-attention": {"attention": "sdpa"},
            "repeated-kv": {"attention": REPEATED_KV_FP32_SDPA},
            "kept-activation": {"recompute_gated_activation": False}, "whole-batch": {"micro_batch_rows": 0},
            "one-row": {"micro_batch_rows": 1}, "last-15-layers": {"trainable_layers": 15},
            "answer-gradients": {"answer_gradients_only": True}}


def train_once(lm: LanguageModel, examples: list, config: TrainConfig) -> dict[str, float]:
    candidate = attach_lora(LanguageModel(weight_sharing_copy(lm.model), lm.tokenizer, lm.name, lm.needs_bos), config)
    stats = train_module(lm, candidate, examples, parse_strategy("routed+context"), config)
    return {"seconds": stats.seconds, "tokens": stats.tokens, "computed_tokens": stats.computed_tokens, "tokens_per_second": stats.tokens_per_second,
            "final_loss": stats.final_loss, "compiled": stats.compiled_layers, "attention": stats.attention,
            "precision": stats.precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("training_data", type=Path)
    parser.add_argument("--variant", choices=list(VARIANTS), default="compiled")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--examples", type=int, default=None, help="the first N examples only (default: all)")
    args = parser.parse_args()
    lm = load_model()
    examples = read_examples(args.training_data)[: args.examples]
    default = TrainConfig(epochs=args.epochs)
    variant = replace(default, **VARIANTS[args.variant])
    probe, peak = speed_probe(), peaks()
    warm_up = train_once(lm, examples[:8], replace(variant, epochs=1)) if variant.compile_layers else None  # pays the compile
    runs: dict[str, list[dict[str, float]]] = {"default": [], args.variant: []}
    for _ in range(args.repeats):
        runs["default"].append(train_once(lm, examples, default))
        runs[args.variant].append(train_once(lm, examples, variant))
    rows = {name: {"median_s": statistics.median(r["seconds"] for r in each),
                   "runs_s": [r["seconds"] for r in each], "tokens": each[0]["tokens"],
                   "computed_tokens": each[0]["computed_tokens"],
                   "median_tokens_per_second": statistics.median(r["tokens_per_second"] for r in each),
                   "final_loss": [r["final_loss"] for r in each], "attention": each[0]["attention"],
                   "compiled": each[0]["compiled"]} for name, each in runs.items()}
    speed_up = rows["default"]["median_s"] / rows[args.variant]["median_s"]
    paid = warm_up["seconds"] if warm_up else 0.0
    with_warm_up = rows["default"]["median_s"] / (rows[args.variant]["median_s"] + paid)
    out = results_dir("trainer_variants")
    write_json(out / "results.json", {"study": "trainer_variants", "variant": args.variant, "machine": machine_info(),
                                       "speed_probe": probe, "speed_probe_after": speed_probe(),
                                       "matmul_peak": {"before": peak, "after": peaks()}, "examples": len(examples),
                                       "epochs": args.epochs, "warm_up": warm_up, "rows": rows,
                                       "speed_up_steps": speed_up, "speed_up_new_process": with_warm_up})
    print_table("trainer_variants", ["trainer", "median s", "runs s", "tokens", "computed", "tokens/s", "final loss"],
                [[name, r["median_s"], ", ".join(f"{s:.1f}" for s in r["runs_s"]), r["tokens"], r["computed_tokens"], r["median_tokens_per_second"],
                  ", ".join(f"{x:.3f}" for x in r["final_loss"])] for name, r in rows.items()])
    print(f"{args.variant}: {speed_up:.2f}x the default trainer's steps"
          + (f"; {with_warm_up:.2f}x with the warm-up's compile ({paid:.1f} s), as a new process pays it" if warm_up else "")
          + f"; {out}")


if __name__ == "__main__":
    main()
