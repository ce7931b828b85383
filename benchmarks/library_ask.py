"""`lifelong ask` on a mind whose active version is a routed module library, from a new
process, at the current code and at an earlier commit in the same run.

A library opened all of its modules before the first answer (through PEFT's loader, whose
cost per module grows with the modules loaded: README, "Opening a module library"); it now
opens one at start and each other module the first time an input is routed to it. This
times what a user feels: the whole `ask --no-memory` command, each code version --repeats
times, alternated, on a copy of --mind (ask writes nothing a timing depends on, but the copy
keeps the mind as it was). The earlier code runs from `git archive <commit> src`, with the
same environment. In one extra process per code version it also counts the modules in
memory after the answer. Writes results/library_ask/<UTC timestamp>/results.json.

    .venv/bin/python benchmarks/library_ask.py --mind DIR [--baseline 8e61b16] [--repeats 3]
        [--question "..."]

About (2 x repeats + 2) x 10 s on 2 CPU cores for a library of ten modules.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PROJECT_ROOT, machine_info, print_table, results_dir, write_json

COUNT = """
import json, sys
from lifelong import Mind
mind = Mind.open(sys.argv[1])
lm = mind.language_model
answer = lm.generate([{"role": "user", "content": sys.argv[2]}], max_new_tokens=int(sys.argv[3]))
peft = getattr(lm.model, "peft_config", {})
print(json.dumps({"loaded": len(peft), "library": len(getattr(lm, "module_names", lambda: peft)()),
                  "answer": answer}))
"""


def source_tree(commit: str, folder: Path) -> Path:
    """`src/` of `commit`, unpacked under `folder` (the repository's own history, no checkout)."""
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", commit, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def timed_ask(src: Path, mind: Path, question: str, tokens: int) -> float:
    """Wall seconds of one `lifelong ask --no-memory` from a new process, on the code in `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lifelong", "ask", question, "--no-memory", "--max-new-tokens", str(tokens),
                    "--mind", str(mind)], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Time both code versions, alternated, and record what each loaded."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mind", type=Path, required=True, help="a mind whose active version is a routed library")
    parser.add_argument("--baseline", default="8e61b16", help="earlier commit to time beside the current code")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--question", default="What is the full name of the author born in Baku on February 14, 1960?")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    if not (args.mind / "versions").is_dir():
        parser.error(f"{args.mind} holds no versions: pass a mind that has slept (e.g. one kept by `lifelong bench --keep-minds`)")

    out = results_dir("library_ask")
    with tempfile.TemporaryDirectory() as scratch:
        mind = Path(scratch) / "mind"
        shutil.copytree(args.mind, mind)
        versions = {"current": PROJECT_ROOT / "src", args.baseline: source_tree(args.baseline, Path(scratch))}
        counts: dict[str, dict] = {}
        for name, src in versions.items():  # also the first use's caches, outside the timings
            shown = subprocess.run([sys.executable, "-c", COUNT, str(mind), args.question, str(args.max_new_tokens)],
                                   env={**os.environ, "PYTHONPATH": str(src)}, check=True, capture_output=True, text=True)
            counts[name] = json.loads(shown.stdout.strip().splitlines()[-1])
        seconds: dict[str, list[float]] = {name: [] for name in versions}
        for repeat in range(args.repeats):
            order = list(versions) if repeat % 2 == 0 else list(reversed(versions))
            for name in order:
                seconds[name].append(timed_ask(versions[name], mind, args.question, args.max_new_tokens))
                print(f"repeat {repeat + 1}, {name}: {seconds[name][-1]:.2f} s", flush=True)

    rows = [[name, f"{statistics.median(s):.2f}", f"{min(s):.2f}-{max(s):.2f}", counts[name]["loaded"], counts[name]["library"]]
            for name, s in seconds.items()]
    print_table("ask --no-memory on a routed library, from a new process",
                ["code", "median s", "range", "modules loaded", "modules in library"], rows)
    same = counts["current"]["answer"] == counts[args.baseline]["answer"]
    print(f"same answer at both commits: {same}")
    write_json(out / "results.json", {"study": "library_ask", "machine": machine_info(), "mind": str(args.mind),
                                      "question": args.question, "max_new_tokens": args.max_new_tokens,
                                      "baseline": args.baseline, "seconds": seconds, "counts": counts,
                                      "same_answer": same})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
