"""Does a sleep's cost grow linearly with what it learns? Sleeps of 10, 100 and 1,000 facts,
each run as a user runs it (`lifelong learn` a file of notes, then `lifelong sleep`, each a new
process under the allocator the command picks), timed and sampled for resident memory from
outside, topic by topic.

Issue 16 asks for wall time and peak RSS at 10, 100 and 1,000 facts, plotted. The shared
benchmark data holds 300 TOFU facts, so each size takes the same mixture: the first 30% of its
facts from TOFU's answers (fictitious authors, file order) and 70% from the sentences of the
SQuAD dev passages (real Wikipedia text, passage order), each learned as one note. A sleep by
topic (the default) makes one module per topic, so at 1,000 facts the library grows past 100
modules: the per-topic rows show whether a topic costs more time or memory as the library it
joins grows (module loading is lazy and linear since 2026-12-06, README "Opening a module
library").

A 1,000-fact sleep takes hours on 2 CPU cores. It is resumable: a sleep by topic commits each
topic's version as it goes, so with `--resume` a size whose sleep was stopped runs `lifelong
sleep` again on the same mind, which consolidates the memories left. `--stop-after S` stops a
sleep between topics once S seconds of this invocation have passed (Ctrl-C sent right after a
topic's verdict, so no topic's work is lost). Each run's record is appended to
<work>/<size>/runs.jsonl as it ends, and every invocation rewrites the results folder from all
records so far (a size still under way is marked incomplete).

Wall time of a size = the sum, over its runs, of each run's time up to its last topic verdict
(the whole run when it finished); the start-up each extra run repeats (model load, topic
clustering) is reported beside it, and so are the seconds of topics trained again after a
resume (a resumed sleep retries the notes of a topic the gate refused, which one uninterrupted
sleep would not). Peak RSS = the largest VmHWM of its runs. A topic's synthesis seconds
include the notes of the next topics it wrote ahead (learn/synthesis.SharedDistiller), so
per-topic synthesis comes in spikes, one per 64 notes.

    .venv/bin/python benchmarks/sleep_scaling.py --data ../shared/data --work /work/runs/sleep_scaling \
        [--sizes 10,100,1000] [--resume] [--stop-after SECONDS] [--report-only]

Writes results/sleep_scaling/<time>/results.json and sleep_scaling.png.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _common import machine_info, print_table, results_dir, write_json

TOFU_SHARE = 0.3  # 300 of 1,000: every TOFU fact the shared data has
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
TOPIC_LINE = re.compile(r"topic (\d+)/(\d+): (.*)$")
SAMPLE_SECONDS = 0.25
STOPPING = threading.Event()  # set by a `kill` of this script: no further size starts


def facts_for(data: Path, size: int) -> list[str]:
    """The size's notes: round(30%) TOFU answers then SQuAD dev sentences, each source in file
    order, so a smaller size is a prefix of each source of a larger one."""
    tofu = [json.loads(line)["answer"] for line in (data / "tofu_authors_dev.jsonl").read_text().splitlines() if line.strip()]
    passages = [json.loads(line)["passage"] for line in (data / "squad_passages_dev.jsonl").read_text().splitlines() if line.strip()]
    sentences = [s.strip() for p in passages for s in SENTENCE_END.split(p.strip()) if len(s.split()) >= 4]
    from_tofu = round(TOFU_SHARE * size)
    if from_tofu > len(tofu) or size - from_tofu > len(sentences):
        raise SystemExit(f"--sizes {size}: the shared data has {len(tofu)} TOFU facts and {len(sentences)} SQuAD sentences, "
                         f"enough for at most {min(int(len(tofu) / TOFU_SHARE), int(len(sentences) / (1 - TOFU_SHARE)))} facts; "
                         "ask for a smaller size")
    return tofu[:from_tofu] + sentences[:size - from_tofu]


def lifelong_command() -> list[str]:
    """The console script beside this interpreter (a user's `lifelong`), else `python -m lifelong`."""
    script = Path(sys.executable).with_name("lifelong")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lifelong"]


def proc_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Run:
    """One `lifelong sleep` process: its stderr lines timestamped, its RSS sampled, and a
    Ctrl-C sent between topics once `deadline` (perf_counter seconds) has passed."""

    def __init__(self, mind: Path, deadline: float | None, partial: Path) -> None:
        self.mind, self.deadline, self.partial = mind, deadline, partial
        self.run_id = uuid.uuid4().hex
        self.lines: list[tuple[float, str]] = []
        self.topic = 0  # the topic number the last line named; 0 before the first
        self.peak_by_topic: dict[int, int] = {}
        self.hwm_kib = 0
        self.interrupted = False

    def go(self) -> dict[str, Any]:
        start = time.perf_counter()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        libc, parent = ctypes.CDLL(None, use_errno=True), os.getpid()  # loaded here: nothing to load between fork and exec
        process = subprocess.Popen([*lifelong_command(), "sleep", "--mind", str(self.mind)], stderr=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=env, preexec_fn=lambda: interrupt_when_parent_dies(libc, parent))
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = proc_status_kib(process.pid, "VmRSS")
                hwm = proc_status_kib(process.pid, "VmHWM")
                if rss is not None:
                    self.peak_by_topic[self.topic] = max(self.peak_by_topic.get(self.topic, 0), rss)
                if hwm is not None:
                    self.hwm_kib = max(self.hwm_kib, hwm)
                time.sleep(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def stop_now(_signum: int, _frame: Any) -> None:  # `kill` of this script: stop the sleep, keep the record
            self.interrupted = True
            STOPPING.set()
            if process.poll() is None:
                process.send_signal(signal.SIGINT)

        previous = signal.signal(signal.SIGTERM, stop_now)
        assert process.stderr is not None
        for raw in process.stderr:
            now = time.perf_counter() - start
            line = raw.rstrip("\n")
            message = line[9:] if re.match(r"^\d\d:\d\d:\d\d ", line) else line
            self.lines.append((now, message))
            print(f"  [{now:6.0f} s] {message}", flush=True)
            found = TOPIC_LINE.search(message)
            if found:
                self.topic = int(found.group(1))
                ended = is_verdict(message)
                if ended:  # what a driver that dies now leaves behind: the run up to this verdict
                    temporary = self.partial.with_suffix(".tmp")
                    temporary.write_text(json.dumps(self.record(None, now, "", interrupted=True)))
                    os.replace(temporary, self.partial)
                last = found.group(1) == found.group(2)  # after the last topic's verdict the sleep is done
                if ended and not last and self.deadline is not None and time.perf_counter() > self.deadline \
                        and process.poll() is None:
                    process.send_signal(signal.SIGINT)  # between topics: the verdict is committed
                    self.interrupted = True
        stdout = process.stdout.read() if process.stdout else ""
        code = process.wait()
        signal.signal(signal.SIGTERM, previous)
        done.set()
        sampler.join()
        return self.record(code, time.perf_counter() - start, stdout, self.interrupted)

    def record(self, code: int | None, wall: float, stdout: str, interrupted: bool) -> dict[str, Any]:
        record = {"run_id": self.run_id, "exit_code": code, "interrupted": interrupted, "wall_seconds": wall,
                  "start_up_seconds": next((t for t, m in self.lines if TOPIC_LINE.search(m)), wall),
                  "peak_rss_mib": self.hwm_kib / 1024,
                  "peak_rss_mib_by_topic": {str(k): v / 1024 for k, v in self.peak_by_topic.items()},
                  "topics_finished": len(verdict_times(self.lines)), "stdout": stdout[-2000:], "lines": self.lines,
                  "finished": not interrupted and code in (0, 10)}
        return {**record, "counted_seconds": counted_seconds(record)}


def is_verdict(message: str) -> bool:
    """Whether a progress line ends a topic ("topic k/n: vN promoted", "... vN kept for inspection")."""
    found = TOPIC_LINE.search(message)
    return found is not None and re.match(r"v\d+ ", found.group(3)) is not None


def verdict_times(lines: list[tuple[float, str]]) -> list[float]:
    return [t for t, message in lines if is_verdict(message)]


PR_SET_PDEATHSIG = 1


def interrupt_when_parent_dies(libc: ctypes.CDLL, parent: int) -> None:
    """In the sleep's process before it starts (Linux): Ctrl-C it if this driver dies, so no
    topic is consolidated without its time on record (the signal survives its re-execution
    under tcmalloc); a driver already gone means no sleep at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a driver started with `&` ignores Ctrl-C, and its sleep would too
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != parent:
        os._exit(130)


def versions(mind: Path) -> dict[str, Any]:
    out = subprocess.run([*lifelong_command(), "versions", "--mind", str(mind), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run_size(work: Path, data: Path, size: int, resume: bool, deadline: float | None) -> None:
    folder = work / str(size)
    mind, runs_file = folder / "mind", folder / "runs.jsonl"
    if not resume and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "run.partial.json"
    if partial.exists():  # a driver that died mid-run (killed, the machine stopped): its run up to its last verdict
        left = json.loads(partial.read_text())
        if left["run_id"] not in {r.get("run_id") for r in read_runs(runs_file)}:  # not recorded before it died
            with runs_file.open("a") as handle:
                handle.write(json.dumps({**left, "run": len(read_runs(runs_file)) + 1, "driver_died": True,
                                         "ended_at": partial.stat().st_mtime}) + "\n")
        partial.unlink()
    records = read_runs(runs_file)
    if records and records[-1]["finished"]:
        print(f"{size} facts: finished in an earlier run ({runs_file})")
        return
    learned = folder / "learned"  # written once `learn` has stored every fact (it writes all or none)
    if records and mind.exists():  # a mind a run has slept on was learned (records from before the marker existed)
        learned.touch()
    if not learned.exists():
        shutil.rmtree(mind, ignore_errors=True)
        notes = folder / "facts.jsonl"
        notes.write_text("".join(json.dumps({"text": fact}) + "\n" for fact in facts_for(data, size)))
        subprocess.run([*lifelong_command(), "learn", str(notes), "--mind", str(mind), "--source", f"scaling-{size}"], check=True)
        learned.touch()
    print(f"{size} facts: lifelong sleep (run {len(records) + 1})", flush=True)
    record = Run(mind, deadline, partial).go()
    record.update({"run": len(records) + 1, "ended_at": time.time()})
    with runs_file.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    partial.unlink(missing_ok=True)
    if record["exit_code"] not in (0, 10) and not record["interrupted"]:
        raise SystemExit(f"{size} facts: lifelong sleep exited {record['exit_code']}; see the lines above")


def read_runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def counted_seconds(run: dict[str, Any]) -> float:
    """A run's seconds up to its last topic verdict, unless it finished: a sleep stopped any
    other way (Ctrl-C, a kill) lost the topic under way, whose time one whole sleep would not
    have spent."""
    if run["finished"]:
        return run["wall_seconds"]
    verdicts = verdict_times(run["lines"])
    return verdicts[-1] if verdicts else 0.0


def summarise(work: Path, size: int) -> dict[str, Any] | None:
    folder = work / str(size)
    runs = read_runs(folder / "runs.jsonl")
    if not runs:
        return None
    made = versions(folder / "mind")["versions"]
    topics: list[dict[str, Any]] = []
    trained: set[int] = set()
    for index, version in enumerate(sorted(made, key=lambda v: v["created_at"])):
        metrics = version.get("metrics", {})
        own = set(version.get("own_memory_ids") or version.get("memory_ids", []))
        retried, trained = bool(own & trained), trained | own  # a refused topic's notes, trained again after a resume
        topics.append({"version": version["id"], "memories": len(own), "retried": retried,
                       "library_before": sum(1 for v in topics if v["promoted"]), "promoted": bool(version.get("verdict", {}).get("passed")),
                       "stage_seconds": metrics.get("stage_seconds", {}), "train_tokens": metrics.get("train_tokens"),
                       "tokens_per_second": metrics.get("tokens_per_second"), "order": index})
    peaks = [p for r in runs for k, p in r["peak_rss_mib_by_topic"].items() if k != "0"]
    consolidated = sum(t["memories"] for t in topics if t["promoted"])
    counted = sum(counted_seconds(r) for r in runs)
    return {"facts": size, "finished": runs[-1]["finished"], "runs": len(runs), "wall_seconds": counted,
            # a size under way: per fact consolidated so far (its start-up not yet spread over the rest)
            "seconds_per_fact": counted / size if runs[-1]["finished"] else (counted / consolidated if consolidated else None),
            "seconds_per_fact_consolidated": counted / consolidated if consolidated else None,
            "repeated_start_up_seconds": sum(r["start_up_seconds"] for r in runs[1:]),
            "lost_seconds": sum(r["wall_seconds"] - counted_seconds(r) for r in runs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "topic_peak_rss_mib_max": max(peaks) if peaks else None,
            "memories_consolidated": consolidated, "topics": topics,
            "retried_topics": sum(t["retried"] for t in topics),
            "retried_seconds": sum(sum(t["stage_seconds"].values()) for t in topics if t["retried"]),
            "topics_promoted": sum(t["promoted"] for t in topics), "topics_made": len(topics),
            "run_records": [{k: v for k, v in r.items() if k != "lines"} for r in runs]}


def plot(sizes: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    done = [s for s in sizes if s["finished"]]
    under_way = [s for s in sizes if not s["finished"]]  # drawn at the facts consolidated so far, hollow

    def so_far(s: dict[str, Any]) -> str:
        return f"{s['facts']:,}-fact sleep so far: {s['memories_consolidated']} facts"

    ax = axes[0]
    ax.loglog([s["facts"] for s in done], [s["wall_seconds"] for s in done], "o-", color="tab:blue", label="whole sleep")
    for s in done:
        ax.annotate(f"{s['wall_seconds']:,.0f} s", (s["facts"], s["wall_seconds"]), textcoords="offset points", xytext=(5, -12),
                    fontsize=8)
    for s in under_way:
        ax.loglog([s["memories_consolidated"]], [s["wall_seconds"]], "o", mfc="none", color="tab:blue", label=so_far(s))
    reference = next((s for s in done if s["facts"] == 100), done[0] if done else sizes[0])
    ends = [1, max(s["facts"] for s in sizes)]
    ax.loglog(ends, [reference["wall_seconds"] * f / reference["facts"] for f in ends], "--", color="grey",
              label=f"linear through {reference['facts']} facts")
    ax.set_xlabel("facts learned")
    ax.set_ylabel("wall s")
    ax.legend(fontsize=8)
    ax.set_title("wall time", fontsize=10)
    ax = axes[1]
    ax.semilogx([s["facts"] for s in done], [s["peak_rss_mib"] for s in done], "o-", color="tab:red", label="peak RSS (VmHWM)")
    for s in under_way:
        ax.semilogx([s["memories_consolidated"]], [s["peak_rss_mib"]], "o", mfc="none", color="tab:red", label=so_far(s))
    ax.axhline(2048, color="grey", linestyle="--", label="2 GiB")
    ax.set_xlabel("facts learned")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    ax.set_title("peak resident memory", fontsize=10)
    largest = max(sizes, key=lambda s: s["facts"])
    ax = axes[2]
    topics = largest["topics"]
    stages = list(dict.fromkeys(name for t in topics for name in t["stage_seconds"]))
    bottom = [0.0] * len(topics)
    for name in stages:
        heights = [t["stage_seconds"].get(name, 0.0) / max(t["memories"], 1) for t in topics]
        ax.bar([t["library_before"] for t in topics], heights, bottom=bottom, label=name, width=0.9)
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    ax.set_xlabel("modules in the library before the topic")
    ax.set_ylabel("seconds per fact of the topic")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title(f"{largest['facts']}-fact sleep, topic by topic", fontsize=10)
    fig.suptitle("sleep cost against facts learned (TOFU 30% + SQuAD sentences 70%, the default recipe)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "sleep_scaling.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, required=True, help="where the minds and run records live (kept for --resume)")
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--resume", action="store_true", help="continue the sizes under --work instead of starting over")
    parser.add_argument("--stop-after", type=float, help="stop between topics once this many seconds have passed")
    parser.add_argument("--report-only", action="store_true", help="write the results from the records so far; run nothing")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        facts_for(args.data, size)  # every size checked before the first runs
    deadline = time.perf_counter() + args.stop_after if args.stop_after else None
    if not args.report_only:
        for size in sizes:
            if STOPPING.is_set() or (deadline is not None and time.perf_counter() > deadline):
                break
            run_size(args.work, args.data, size, args.resume, deadline)
    summaries = [s for s in (summarise(args.work, size) for size in sizes) if s is not None]
    if not summaries:
        raise SystemExit("no sleep recorded yet under --work; run without --report-only")
    out = results_dir("sleep_scaling")
    write_json(out / "results.json", {"study": "sleep_scaling", "machine": machine_info(), "sizes": summaries})
    print_table("Sleep cost by size (default recipe, one process per run)",
                ["facts", "finished", "runs", "wall s", "s per fact", "peak RSS MiB", "topics promoted/made", "consolidated"],
                [[s["facts"], s["finished"], s["runs"], s["wall_seconds"], s["seconds_per_fact"], s["peak_rss_mib"],
                  f"{s['topics_promoted']}/{s['topics_made']}", s["memories_consolidated"]] for s in summaries])
    plot(summaries, out)
    print(out / "results.json")


if __name__ == "__main__":
    main()
