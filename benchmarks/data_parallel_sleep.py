"""One sleep run two ways on the default model: one process, and `torchrun --nproc-per-node 2`
(gloo, data-parallel), from copies of the same mind. Side by side: wall time, training time and
tokens/s, what the gate measured of each module (acquisition of the new facts closed-book and
with the note, retention agreement with the base, KL drift), the verdict, and how far apart the
two modules' weight changes are.

The mind learns --facts TOFU dev answer sentences, as `lifelong learn` stores them. Threads:
the one-process run gets every core (torch's default), each of the N ranks 1/N of them, so both
use the same machine. Writes results/data_parallel_sleep/<UTC>/results.json and a plot.

    .venv/bin/python benchmarks/data_parallel_sleep.py [--facts 10] [--processes 2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, speed_probe, write_json

GATE_KEYS = ("acquisition", "with_memory", "retention_agreement", "kl_drift", "train_seconds", "train_tokens", "tokens_per_second")


def sleep(mind: Path, processes: int, cores: int) -> dict[str, Any]:
    threads = max(1, cores // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "LIFELONG_MIND": str(mind)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    start = time.perf_counter()
    result = subprocess.run([*launcher, "-m", "lifelong", "sleep", "--json"], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if "{" not in result.stdout:
        raise SystemExit(f"sleep with {processes} process(es) failed ({result.returncode}): {result.stderr[-2000:]}")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    metrics = report["manifest"]["metrics"]
    return {"processes": processes, "threads_per_process": threads, "wall_seconds": wall, "activated": report["activated"],
            "message": report["message"], **{k: metrics.get(k) for k in GATE_KEYS},
            "router_recall": metrics.get("router_recall"), "verdict": report["manifest"]["verdict"]}


def weight_change_difference(one: Path, two: Path, version: str) -> float:
    """Largest relative difference, over adapted layers, of the weight change B @ A."""
    from safetensors.torch import load_file

    a = load_file(one / "versions" / version / "adapter" / "adapter_model.safetensors")
    b = load_file(two / "versions" / version / "adapter" / "adapter_model.safetensors")
    worst = 0.0
    for name in (k for k in a if "lora_B" in k):
        other = name.replace("lora_B", "lora_A")
        delta_a, delta_b = a[name] @ a[other], b[name] @ b[other]
        worst = max(worst, float((delta_a - delta_b).norm()) / max(float(delta_a.norm()), 1e-12))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()

    from lifelong.memory.records import NewMemory
    from lifelong.mind import Mind

    rows = [json.loads(line) for line in (args.data / "tofu_authors_dev.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    work = Path(tempfile.mkdtemp(prefix="lifelong-dp-"))
    one, many = work / "one", work / "many"
    with Mind.init(one) as mind:
        mind.learn_records([NewMemory(r["answer"], "tofu_authors_dev") for r in rows[:args.facts]])
    shutil.copytree(one, many)
    cores = os.cpu_count() or 1
    probes = [speed_probe()]
    runs = [sleep(one, 1, cores), sleep(many, args.processes, cores)]
    probes.append(speed_probe())
    version = "v1"  # a new mind's first sleep
    result = {"study": "data_parallel_sleep", "config": {"facts": args.facts, "processes": args.processes, "cores": cores},
              "runs": runs, "weight_change_relative_difference": weight_change_difference(one, many, version),
              "speed_probes": probes, "machine": machine_info()}
    out = results_dir("data_parallel_sleep")
    write_json(out / "results.json", result)
    _plot(result, out / "data_parallel_sleep.png")
    print_table(f"one sleep of {args.facts} TOFU facts: 1 process vs {args.processes}",
                ["processes", "wall s", "train s", "tokens/s", "acquisition", "with memory", "retention", "promoted"],
                [[r["processes"], r["wall_seconds"], r["train_seconds"], r["tokens_per_second"], r["acquisition"],
                  r["with_memory"], r["retention_agreement"], r["activated"]] for r in runs])
    print(f"weight change, largest relative difference between the two modules: {result['weight_change_relative_difference']:.2e}")
    print(f"results: {out}")


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    labels = [f"{r['processes']} process{'es' if r['processes'] > 1 else ''}" for r in runs]
    fig, (time_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    time_ax.bar(labels, [r["wall_seconds"] for r in runs], label="wall")
    time_ax.bar(labels, [r["train_seconds"] for r in runs], label="training")
    time_ax.set_ylabel("seconds")
    time_ax.legend(fontsize=8)
    keys = ("acquisition", "with_memory", "retention_agreement")
    width = 0.38
    for i, r in enumerate(runs):
        score_ax.bar([j + (i - 0.5) * width for j in range(len(keys))], [r[k] or 0 for k in keys], width, label=labels[i])
    score_ax.set_xticks(range(len(keys)), [k.replace("_", " ") for k in keys])
    score_ax.set_ylim(0, 1.05)
    score_ax.legend(fontsize=8)
    score_ax.set_title("what the gate measured of each module", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
