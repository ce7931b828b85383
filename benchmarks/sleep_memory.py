"""Where a sleep's peak memory is: resident set size of one process that does what `lifelong
learn` then `lifelong sleep` do on a fresh mind (the default model, N TOFU facts), sampled
every 20 ms and attributed to the stage the sleep last reported (its own progress lines).

Issue 16 asks a 100-fact sleep to fit in 2 GiB; a 3-fact CLI sleep peaked at 4.44 GB, and
before anything can be cut, the stage that sets the peak must be known. Each variant of
`--micro-batch-rows` (packed rows per forward and backward pass; "all": the whole batch, as
before) runs in a process of its own, since a process's resident memory does not shrink back,
and its training seconds are recorded beside its peak. Writes
results/sleep_memory/<time>/results.json.

    .venv/bin/python benchmarks/sleep_memory.py [--data ../shared/data] [--facts 3] [--micro-batch-rows all,1]

About 2 minutes per variant on 2 CPU cores for 3 facts. A "+tcmalloc" variant (say
"checkpointing+tcmalloc") runs with tcmalloc preloaded, so the C library's allocator and
tcmalloc can alternate in one study.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import machine_info, print_table, results_dir, write_json

from lifelong.bench.measure import resident_bytes
from lifelong.process_allocator import tcmalloc_library, tcmalloc_loaded

# A progress line's start -> the stage it begins (consolidate.py's reports, in order).
STAGE_OF = (("checking", "screen"), ("selected", "select"), ("reading the base model's retention", "retention probes"),
            ("synthesising", "synthesis"), ("training a LoRA", "training"), ("trained", "gate"))
TOPIC_PREFIX = re.compile(r"^topic \d+/\d+: ")


class StageSampler:
    """The peak RSS per stage name, the current stage set by `mark`."""

    def __init__(self) -> None:
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, stage: str) -> None:
        self._sample()
        self.stage = stage

    def _sample(self) -> None:
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), resident_bytes() / 2**20)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._sample()
            time.sleep(0.02)


def one_sleep(data: Path, facts_wanted: int, micro_batch_rows: int | None, checkpointing: bool = False,
              return_freed: bool = False, kept: bool = False, weight_copies: bool = False) -> dict[str, object]:
    """One mind, one sleep, in this process: the peak RSS of each stage and the sleep's record."""
    sampler = StageSampler()
    sampler.thread.start()
    sampler.mark("imports")
    from lifelong import Mind
    from lifelong.consolidate import SleepConfig
    from lifelong.learn.trainer import TrainConfig
    from lifelong.learn.training_attention import DEFAULT_TRAINING_ATTENTION, REPEATED_KV_FP32_SDPA

    facts = [json.loads(line)["answer"] for line in (data / "tofu_authors_dev.jsonl").read_text().splitlines()][:facts_wanted]
    messages: list[tuple[float, str]] = []
    start = time.perf_counter()

    def report(message: str) -> None:
        messages.append((time.perf_counter() - start, message))
        print(f"  [{messages[-1][0]:.0f} s, {resident_bytes() / 2**20:,.0f} MiB] {message}", flush=True)  # an hour for 100 facts
        step = TOPIC_PREFIX.sub("", message)  # a sleep of several topics reports "topic 2/11: training ..."
        for prefix, stage in STAGE_OF:
            if step.startswith(prefix):
                sampler.mark(stage)

    with tempfile.TemporaryDirectory() as scratch:
        sampler.mark("open and learn")
        with Mind.open(Path(scratch) / "mind", create=True) as mind:
            for fact in facts:
                mind.learn(fact, source="tofu")
            sampler.mark("load the model")
            mind.language_model  # noqa: B018 - loads it, as the sleep command's first step does
            train = TrainConfig(micro_batch_rows=micro_batch_rows, gradient_checkpointing=checkpointing,
                                return_freed_memory=return_freed, recompute_gated_activation=not kept,
                                attention=REPEATED_KV_FP32_SDPA if kept else DEFAULT_TRAINING_ATTENTION,
                                recast_frozen_weights=not weight_copies)
            result = mind.sleep(SleepConfig(train=train), report=report)
        sampler.mark("closed")
    sampler.stop.set()
    sampler.thread.join()
    metrics = result.manifest.metrics if result.manifest else {}
    return {"micro_batch_rows": micro_batch_rows, "gradient_checkpointing": checkpointing,
            "return_freed_memory": return_freed, "kept_as_before": kept, "bf16_weight_copies": weight_copies,
            "peak_rss_mib_by_stage": sampler.peaks,
            "peak_rss_mib": max(sampler.peaks.values()), "activated": result.activated, "message": result.message,
            "stage_seconds": metrics.get("stage_seconds"), "train_seconds": metrics.get("train_seconds"),
            "train_tokens": metrics.get("train_tokens"), "tokens_per_second": metrics.get("tokens_per_second"),
            "tcmalloc_mapped": tcmalloc_loaded(), "progress": messages}


def parse_variant(variant: str) -> tuple[int | None, bool, bool, bool, bool]:
    """(micro_batch_rows, gradient checkpointing, return freed memory, keep as before, bf16
    weight copies) of a variant such as "all", "2", "checkpointing", "checkpointing+returned",
    "all+kept" or "all+copies" (autocast's bf16 copy of every frozen weight kept for the backward
    pass, as before learn/frozen_linear.py; a "+tcmalloc" suffix is the process's allocator,
    not a training setting: `variant_allocator`)."""
    rows, *suffixes = variant.split("+")
    if not set(suffixes) <= {"returned", "kept", "copies", "tcmalloc"} or not (rows in ("all", "checkpointing") or rows.isdigit()):
        raise ValueError(f"variant {variant!r}: use all, checkpointing or a row count, optionally with '+returned', "
                         "'+kept', '+copies' and '+tcmalloc'")
    return ((0 if rows in ("all", "checkpointing") else int(rows)), rows == "checkpointing", "returned" in suffixes,
            "kept" in suffixes, "copies" in suffixes)  # 0: the whole batch, whatever the precision's default


def variant_allocator(variant: str) -> str | None:
    """The shared library a "+tcmalloc" variant's process preloads (None: the C library's malloc).
    Preloading is the only way to swap the allocator under PyTorch's CPU tensors, and running
    both allocators in one study, alternated, keeps the comparison on one machine at one hour."""
    if "tcmalloc" not in variant.split("+")[1:]:
        return None
    library = tcmalloc_library()
    if library is None:
        raise ValueError(f"variant {variant!r}: no tcmalloc on this machine; install it (Debian: apt install libtcmalloc-minimal4)")
    return library


def variant_name(run: dict[str, object]) -> str:
    name = "checkpointing" if run.get("gradient_checkpointing") else f"rows {run['micro_batch_rows'] or 'all'}"
    return (name + (" +returned" if run.get("return_freed_memory") else "") + (" +kept" if run.get("kept_as_before") else "")
            + (" +copies" if run.get("bf16_weight_copies") else "")
            + (" +tcmalloc" if run.get("allocator") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--facts", type=int, default=3)
    parser.add_argument("--micro-batch-rows", default="all,1", help="comma-separated variants; all: the whole batch at once; "
                                                                   "checkpointing: the whole batch with gradient checkpointing; "
                                                                   "a '+returned' suffix adds TrainConfig.return_freed_memory; "
                                                                   "'+kept' keeps what training kept before 2026-12-06 "
                                                                   "(repeated grouped keys, each MLP's activation); "
                                                                   "'+copies' keeps autocast's bf16 weight copies; "
                                                                   "'+tcmalloc' runs the variant with tcmalloc preloaded")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant here, write its JSON to --out-file
    parser.add_argument("--out-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        args.out_file.write_text(json.dumps(one_sleep(args.data, args.facts, *parse_variant(args.one))))
        return

    for variant in args.micro_batch_rows.split(","):  # every variant checked before the first one runs
        try:
            parse_variant(variant)
            variant_allocator(variant)
        except ValueError as exc:
            parser.error(str(exc))
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for variant in args.micro_batch_rows.split(","):
            out_file = Path(scratch) / f"{variant}-{len(runs)}.json"
            allocator = variant_allocator(variant)
            environment = {**os.environ, "LD_PRELOAD": allocator} if allocator else dict(os.environ)
            subprocess.run([sys.executable, __file__, "--data", str(args.data), "--facts", str(args.facts), "--one", variant,
                            "--out-file", str(out_file)], check=True, env=environment)
            runs.append({**json.loads(out_file.read_text()), "variant": variant, "allocator": allocator})
            print(f"{variant}: peak {runs[-1]['peak_rss_mib']:.0f} MiB, training "
                  f"{runs[-1]['train_seconds']:.1f} s", flush=True)
    out = results_dir("sleep_memory")
    write_json(out / "results.json", {"study": "sleep_memory", "machine": machine_info(), "facts": args.facts, "runs": runs})
    stages = list(dict.fromkeys(stage for run in runs for stage in run["peak_rss_mib_by_stage"]))
    print_table(f"Peak resident memory (MiB) by stage, a {args.facts}-fact sleep",
                ["stage", *(variant_name(r) for r in runs)],
                [[stage, *(r["peak_rss_mib_by_stage"].get(stage, float("nan")) for r in runs)] for stage in stages]
                + [["training seconds", *(r["train_seconds"] for r in runs)],
                   ["tokens/s", *(r["tokens_per_second"] for r in runs)]])
    print(out / "results.json")


if __name__ == "__main__":
    main()
