"""Start-up of the `lifelong` command itself: each command run from a new process, as a user
types it, against the eager imports the commands used to pay, in the same run.

Commands (each --repeats times, on a mind holding --memories memories): `recall` of a query,
`learn -` of one line from standard input, `ask --no-memory` of a question to a full
--max-new-tokens answer (the model may end its answer sooner; the words it wrote are
recorded), on ONNX Runtime as `ask` runs by default and, as the baseline, on torch
(LIFELONG_TORCH_ANSWERS=1), with whether the two answers are identical. Baseline rows: a new process importing what `recall` and
`learn` imported before lazy loading (torch, transformers, presidio with its NLP engines; the
embedder came through sentence-transformers on top), the floor an eager design pays before any
work. Issue 16's targets on a
quiet machine: recall <= 1.5 s, learn <= 2 s, ask --no-memory <= 4 s.
Then where `ask`'s time goes, stage by stage in one process (imports, model load, a 64-token
greedy decode in fp32 and, for comparison, bf16), on torch and on ONNX Runtime. Writes
results/cli_startup/<UTC timestamp>/results.json and cli_startup.png.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--memories 200]

About (repeats x 15 s) plus the first use's one-time ONNX export and model conversion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, speed_probe, write_json

TARGETS = {"recall": 1.5, "learn one line": 2.0, "ask --no-memory": 4.0}
EAGER_IMPORTS = "import torch, transformers.modeling_utils, presidio_analyzer"
LIFELONG = [sys.executable, "-m", "lifelong"]
# Where a new `ask --no-memory` process spends its time, stage by stage, in one process: the
# imports, loading the converted checkpoint, then a forced-length greedy decode in fp32 (what
# `ask` runs) and, for comparison only, the same decode with bf16 weights.
STAGES = """
import json, sys, time
TOKENS = int(sys.argv[1])
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import transformers
from transformers.models.llama import modeling_llama
t2 = time.perf_counter()
from lifelong.model.loader import load_model
from lifelong.progress import quiet_libraries
lm = load_model()
t3 = time.perf_counter()
ids = lm.tokenizer("Write a short story about a lighthouse keeper.", return_tensors="pt").input_ids
decode = {}
for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    lm.model.to(dtype)
    with torch.inference_mode(), quiet_libraries():
        lm.model.generate(ids, max_new_tokens=2, do_sample=False)
        start = time.perf_counter()
        lm.model.generate(ids, max_new_tokens=TOKENS, min_new_tokens=TOKENS, do_sample=False)
        decode[name] = time.perf_counter() - start
print(json.dumps({"import torch": t1 - t0, "import transformers and the model code": t2 - t1,
                  "load the model": t3 - t2, "decode fp32": decode["fp32"], "decode bf16 (not used)": decode["bf16"],
                  "scipy imported": sys.modules.get("scipy") is not None}))
"""

# The same stages on ONNX Runtime, what `ask` runs once the graph is exported: imports, the
# session over the cached graph (and tokenizer), then the forced-length greedy decode.
ONNX_STAGES = """
import json, sys, time
TOKENS = int(sys.argv[1])
t0 = time.perf_counter()
import onnxruntime, tokenizers
t1 = time.perf_counter()
from lifelong.model.onnx_model import OnnxLanguageModel, model_folder
from lifelong.paths import cache_dir
folder = model_folder("smollm2-135m")
lm = OnnxLanguageModel(folder, folder.graph(cache_dir()))
t2 = time.perf_counter()
ids = lm.encode("Write a short story about a lighthouse keeper.")
lm.decoder.greedy(ids, 2, [])
start = time.perf_counter()
lm.decoder.greedy(ids, TOKENS, [])
decode = time.perf_counter() - start
print(json.dumps({"onnx: import onnxruntime and tokenizers": t1 - t0, "onnx: open the graph and tokenizer": t2 - t1,
                  "onnx: decode fp32": decode, "torch imported": "torch" in sys.modules}))
"""


def timed(argv: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return seconds, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--memories", type=int, default=200, help="memories in the mind before timing (default 200)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="ask's answer length (default 64)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    env = {**os.environ, "LIFELONG_MIND": str(work / "mind"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v}
    lines = "".join(f"Depot {i} of the Korvath line opens at {6 + i % 5} in the morning.\n" for i in range(args.memories))
    print(f"preparing a mind with {args.memories} memories (first use exports the embedder and converts the model)")
    timed([*LIFELONG, "learn", "-"], env, stdin=lines)
    timed([*LIFELONG, "ask", "--no-memory", "--max-new-tokens", "4", "Hello?"], env)  # warm the caches once (exports the graph)

    ask = [*LIFELONG, "ask", "--no-memory", "--json", "--max-new-tokens", str(args.max_new_tokens),
           "Write a short story about a lighthouse keeper."]
    torch_env = {**env, "LIFELONG_TORCH_ANSWERS": "1"}
    commands: dict[str, tuple[list[str], str | None, dict[str, str]]] = {
        "recall": ([*LIFELONG, "recall", "When does depot 7 open?"], None, env),
        "learn one line": ([*LIFELONG, "learn", "-"], "The Korvath ferry carries grain and passengers.\n", env),
        "ask --no-memory": (ask, None, env),  # on ONNX Runtime (the default once the graph is exported)
        "baseline: ask --no-memory on torch": (ask, None, torch_env),  # LIFELONG_TORCH_ANSWERS=1: what ask ran before
        "baseline: eager imports only": ([sys.executable, "-c", EAGER_IMPORTS], None, env),
        "baseline: python start": ([sys.executable, "-c", "pass"], None, env),
    }
    rows: dict[str, dict[str, Any]] = {}
    answers: dict[str, str] = {}
    probe = speed_probe()
    for name, (argv, stdin, command_env) in commands.items():
        seconds, answer_tokens = [], None
        for _ in range(args.repeats):
            elapsed, out = timed(argv, command_env, stdin)
            seconds.append(elapsed)
            if argv is ask:
                answers[name] = json.loads(out)["answer"]
                answer_tokens = len(answers[name].split())
        rows[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "runs": seconds,
                      "target_s": TARGETS.get(name), "met": (statistics.median(seconds) <= TARGETS[name]) if name in TARGETS else None,
                      **({"answer_words": answer_tokens} if answer_tokens is not None else {})}
        print(f"{name}: median {rows[name]['median_s']:.2f} s")
    same_answer = len(set(answers.values())) == 1
    print(f"ONNX Runtime and torch answers identical: {same_answer}")

    stage_runs = [{**json.loads(timed([sys.executable, "-c", STAGES, str(args.max_new_tokens)], env)[1].strip().splitlines()[-1]),
                   **json.loads(timed([sys.executable, "-c", ONNX_STAGES, str(args.max_new_tokens)], env)[1].strip().splitlines()[-1])}
                  for _ in range(args.repeats)]
    flags = ("scipy imported", "torch imported")
    stages = {k: statistics.median(r[k] for r in stage_runs) for k in stage_runs[0] if k not in flags}
    stages.update({flag: stage_runs[0][flag] for flag in flags})
    print_table("where ask --no-memory's time goes (median, one process)", ["stage", "s"],
                [[k, f"{v:.2f}" if isinstance(v, float) else str(v)] for k, v in stages.items()])

    folder = results_dir("cli_startup")
    write_json(folder / "results.json", {"study": "cli_startup", "machine": machine_info(), "speed_probe": probe,
                                         "speed_probe_after": speed_probe(), "memories": args.memories,
                                         "repeats": args.repeats, "rows": rows, "answers": answers,
                                         "onnx_and_torch_answers_identical": same_answer, "ask_stages": stages,
                                         "ask_stage_runs": stage_runs})
    print_table("CLI start-up", ["command", "median s", "min s", "max s", "target s", "met"],
                [[n, r["median_s"], r["min_s"], r["max_s"], r["target_s"] or "-", {True: "yes", False: "NO", None: "-"}[r["met"]]]
                 for n, r in rows.items()])
    _plot(rows, folder / "cli_startup.png")
    print(f"results: {folder}")


def _plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh(names, [rows[n]["median_s"] for n in names], color=["tab:blue" if n in TARGETS else "tab:gray" for n in names])
    for i, n in enumerate(names):
        if rows[n]["target_s"]:
            ax.plot([rows[n]["target_s"]] * 2, [i - 0.4, i + 0.4], color="tab:red")
    ax.set_xlabel("seconds from a new process (median); red: issue 16 target")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
