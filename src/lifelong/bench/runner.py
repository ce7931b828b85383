"""Run studies: load the model once, train each arm once, write every study's folder."""

from __future__ import annotations

import contextlib
import importlib
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lifelong.bench.checkpoint import Checkpoint
from lifelong.bench.context import Bench, BenchSettings
from lifelong.bench.data import BenchData
from lifelong.bench.output import machine_info, results_dir, source_version, write_json
from lifelong.errors import InputError
from lifelong.progress import console, status


@dataclass(frozen=True)
class Study:
    module: str  # lifelong.bench.<module>, imported only when the study runs
    run: str
    report: str
    plot: str
    title: str

    def function(self, name: str) -> Callable[..., Any]:
        return getattr(importlib.import_module(f"lifelong.bench.{self.module}"), name)


STUDIES = {
    "acquisition-squad": Study("squad_study", "run", "report", "plot", "Acquisition: SQuAD passages, answered closed-book"),
    "acquisition-facts": Study("facts_study", "run_acquisition", "report_acquisition", "plot_acquisition",
                               "Acquisition: fictitious TOFU facts"),
    "retention": Study("facts_study", "run_retention", "report_retention", "plot_retention",
                       "Retention: what every arm still knows after learning"),
    "sequential": Study("sequential_study", "run", "report", "plot", "Sequential: K sleeps over K batches"),
    "cost": Study("cost_study", "run", "report", "plot", "Cost of a sleep against the naive loop"),
    "retrieval": Study("retrieval_study", "run", "report", "plot", "Retrieval quality and latency"),
    "citations": Study("citations_study", "run", "report", "plot", "Citations: does ask cite the memory its answer came from?"),
    "governance": Study("governance_study", "run", "report", "plot",
                        "Governance: forgetting that reaches the weights, private data, poisoning, injection"),
}


def study_names() -> list[str]:
    return list(STUDIES)


def load_base(model: str) -> Any:
    if model == "tiny":
        from lifelong.model.tiny import build_tiny_model

        return build_tiny_model(context=4096)
    from lifelong.model.loader import load_model

    return load_model(model)


def run_bench(names: Sequence[str], settings: BenchSettings, data_dir: Path, out_root: Path,
              passages_file: Path | None = None, resume: bool = False, keep_minds: Path | None = None,
              reuse_minds: bool = False) -> dict[str, Path]:
    """Run the named studies in order; returns each study's results folder. With `resume`,
    a study cut short earlier reuses the units it had finished (see bench/checkpoint.py).
    With `keep_minds`, the minds the arms train live in that folder and stay after the run, so
    a trained module can be inspected or re-scored without training it again: with
    `reuse_minds`, the fact studies and SQuAD's single passages take their lifelong arms from
    such a folder (when it holds a module of the same strategy on the same memories) instead of
    sleeping again."""
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise InputError(f"unknown study {', '.join(unknown)}; choose from: {', '.join(STUDIES)} (or all)")
    if reuse_minds and keep_minds is None:
        raise InputError("--reuse-minds needs --keep-minds DIR: the folder an earlier run kept its minds in")
    if keep_minds is not None and not reuse_minds and keep_minds.exists() and any(keep_minds.iterdir()):
        raise InputError(f"{keep_minds} is not empty; give --keep-minds a new or empty folder (or add --reuse-minds to "
                         f"score the modules it holds)")
    code = source_version()  # what this process loaded, whatever is committed while it runs
    data = BenchData(data_dir, passages_file)
    from lifelong.memory.embedder import MiniLMEmbedder

    with status(f"loading {settings.model} and the embedder"):
        base = load_base(settings.model)
        embedder = MiniLMEmbedder()
    command = "lifelong " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name in ("lifelong", "__main__.py") else shlex.join(sys.argv)
    written: dict[str, Path] = {}
    if keep_minds is not None:
        keep_minds.mkdir(parents=True, exist_ok=True)
    scratch_space = contextlib.nullcontext(str(keep_minds)) if keep_minds else tempfile.TemporaryDirectory(prefix="lifelong-bench-")
    with scratch_space as scratch:
        bench = Bench(base, embedder, data, settings, Path(scratch), reuse_minds=reuse_minds,
                      keep_minds=keep_minds is not None)
        for name in names:
            study = STUDIES[name]
            console().rule(f"{name}: {study.title}")
            data_label = str(data_dir) + (f" (passages: {passages_file})" if passages_file else "")
            identity = {"study": name, "model": base.name, "data": str(Path(data_dir).resolve()),
                        "passages_file": str(passages_file.resolve()) if passages_file else None, "settings": settings.to_dict()}
            bench.checkpoint = Checkpoint.for_study(out_root, name, identity, code, resume)
            machine = machine_info(code)  # its utc_time is when the study started
            started = time.perf_counter()
            results = study.function(study.run)(bench)
            out = results_dir(out_root, name, datetime.fromisoformat(machine["utc_time"]))
            meta = {"study": name, "model": base.name, "data": data_label, "settings": settings.to_dict(),
                    "seed": settings.seed, "machine": machine, "command": command,
                    "wall_seconds": time.perf_counter() - started, "checkpoint": bench.checkpoint.summary()}
            results = {**meta, **results}
            write_json(out / "results.json", results)
            study.function(study.plot)(results, out)
            (out / "report.md").write_text(render_report(study, results), encoding="utf-8")
            bench.checkpoint.finish()
            console().print(f"[bold]{name}[/bold]: {out / 'report.md'} ({meta['wall_seconds']:.0f} s)")
            written[name] = out
    return written


def render_report(study: Study, results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    lines = [
        f"# {results['study']}: {study.title}",
        "",
        f"- started (UTC): {machine['utc_time']}",
        f"- model: {results['model']}; seed {results['seed']}; {settings['epochs']} epochs; default strategy "
        f"`{settings['strategies'][0]}`; LoRA rank {settings['train_config']['rank']}, lr {settings['train_config']['learning_rate']}",
        f"- data: {results['data']}",
        f"- machine: {machine['cpu_count']} CPUs ({machine['processor']}), torch {machine['torch']}, {machine['torch_threads']} threads",
        f"- code: {machine.get('code', 'unknown')}; wall time: {results['wall_seconds']:.0f} s{_resumed(results)}",
        f"- command: `{results['command']}`",
        "",
        *study.function(study.report)(results),
    ]
    return "\n".join(lines) + "\n"


def _resumed(results: dict[str, Any]) -> str:
    checkpoint = results.get("checkpoint") or {}
    if not checkpoint.get("resumed_units"):
        return ""
    return (f", plus {checkpoint['resumed_seconds']:.0f} s in earlier processes for {len(checkpoint['resumed_units'])} "
            f"resumed unit(s) (code {', '.join(checkpoint['resumed_codes'])})")
