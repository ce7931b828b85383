"""cost: what one sleep costs (wall time, tokens trained, tokens/s, peak memory), and the
trainers behind it against the naive loops a user would write, on the same data."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from lifelong.bench.arms import make_mind, sleep_once
from lifelong.bench.context import Bench, fact_record
from lifelong.bench.flops import peaks, training_flops_per_token, utilisation
from lifelong.bench.measure import PeakMemory, release_memory
from lifelong.bench.naive import RawTextFineTune, naive_peft_loop
from lifelong.bench.output import markdown_table
from lifelong.bench.verdict import losses
from lifelong.learn.compiled_layers import compiler_available
from lifelong.consolidate import read_examples, trains_answer_gradients_only
from lifelong.versions.layout import TRAINING_DATA
from lifelong.learn.rehearsal import base_rehearsal
from lifelong.learn.strategies import parse_strategy
from lifelong.learn.trainer import (
    attach_lora,
    train_module,
)
from lifelong.progress import status


def run(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    qas = bench.data.facts(s.cost_facts, "--cost-facts")
    strategy, train = s.strategies[0], s.train()
    rows: dict[str, dict[str, Any]] = {}
    with status("cost: the CPU's matmul peak (2048^3, bf16 and fp32)"):
        peak_before = peaks()

    verdicts, examples, stages, gate_parts = {}, [], {}, {}
    for i, each in enumerate(s.strategies):  # the default first; its examples feed the trainer rows below
        release_memory()
        mind = make_mind(bench.root / ("cost" + (f"-{i}" if i else "")), bench.base, bench.embedder, [fact_record(qa) for qa in qas])
        with PeakMemory() as peak:
            slept = sleep_once(mind, each, train, f"cost: one sleep ({each})", [qa.question for qa in qas],
                               s.synthesis())
        metrics = slept["info"]["gate_metrics"]
        rows[f"lifelong sleep ({each}): synthesis + training + gate"] = {
            "seconds": slept["info"]["sleep_seconds"], "train_seconds": metrics["train_seconds"], "tokens": metrics["train_tokens"],
            "computed_tokens": metrics.get("computed_tokens", metrics["train_tokens"]),
            "tokens_per_second": metrics["tokens_per_second"], **peak.to_dict()}
        timed = metrics.get("stage_seconds", {})
        stages[each] = {**timed, "commit": max(0.0, slept["info"]["sleep_seconds"] - sum(timed.values()))}
        gate_parts[each] = metrics.get("gate_seconds", {})
        verdicts[each] = {"passed": slept["info"]["passed"], "reasons": slept["info"]["reasons"]}
        examples = examples or read_examples(mind.versions.path(slept["info"]["version"]) / TRAINING_DATA)
        mind.close()
    replay = base_rehearsal(bench.base)

    one_epoch = replace(train, epochs=1)
    # each objective trains as its sleep would (a routed one on its answers' gradients alone, by default)
    trainers = [(f"lifelong trainer, {objective}" + (" objective" if objective == "naive" else "") + ", 1 epoch", objective,
                 replace(one_epoch, answer_gradients_only=trains_answer_gradients_only(one_epoch, parse_strategy(objective))))
                for objective in dict.fromkeys([*s.strategies, "naive"])]
    if compiler_available():  # the first compiled training of the process: the compile is in its seconds
        trainers.append((f"lifelong trainer, {strategy}, compiled decoder layers (compile included), 1 epoch",
                         strategy, replace(one_epoch, compile_layers=True)))
    for name, objective, config in trainers:
        release_memory()
        with status(f"cost: {name}"), PeakMemory() as peak:  # the model copy inside, as in the naive rows
            lm = bench.base.with_own_weights()
            model = attach_lora(lm, config)
            stats = train_module(bench.base, model, examples, parse_strategy(objective), config, replay=replay)
        flops = training_flops_per_token(model)  # the same LoRA shape in every trainer row
        rows[name] = {"seconds": stats.seconds, "train_seconds": stats.seconds, "tokens": stats.tokens,
                      "computed_tokens": stats.computed_tokens, "tokens_per_second": stats.tokens_per_second, **peak.to_dict()}
        del model, lm
    release_memory()
    with status("cost: naive PEFT loop on the same examples, 1 epoch"), PeakMemory() as peak:
        rows["naive PEFT loop (fp32, full-vocabulary loss, padded), 1 epoch"] = {
            **naive_peft_loop(bench.base, examples, replace(one_epoch, bf16=False)), **peak.to_dict()}
    release_memory()
    with status(f"cost: naive fine-tune on the raw fact sentences, {train.epochs} epoch(s)"), PeakMemory() as peak:
        tuner = RawTextFineTune(bench.base, train)
        stats = tuner.train([qa.answer for qa in qas], "cost: naive fine-tune")
    rows[f"naive fine-tune on raw text (baseline arm), {train.epochs} epoch(s)"] = {**stats, "train_seconds": stats["seconds"], **peak.to_dict()}
    peak_after = peaks()
    peak = {key: max(peak_before[key], peak_after[key]) for key in peak_before}
    for row in rows.values():  # FLOPs are spent on the positions computed: shared openings once
        computed = row.get("computed_tokens", 0) / row["train_seconds"] if row.get("computed_tokens") and row["train_seconds"] else 0.0
        row.update(utilisation(computed or row["tokens_per_second"], flops, peak))
    return {"facts": len(qas), "examples": len(examples), "replay_examples": len(replay), "rows": rows,
            "sleep_verdict": verdicts[strategy], "sleep_verdicts": verdicts, "sleep_stage_seconds": stages,
            "sleep_gate_seconds": gate_parts,
            "matmul_peak": {"before": peak_before, "after": peak_after}, "flops_per_trained_token": flops}


def report(results: dict[str, Any]) -> list[str]:
    rows = [[name, r["seconds"], r["train_seconds"], r["tokens"], r["tokens_per_second"], r.get("mfu", float("nan")),
             r["peak_rss_mib"], r["peak_increase_mib"]]
            for name, r in results["rows"].items()]
    peak = results.get("matmul_peak", {}).get("before")
    utilisation_note = ([f"MFU: useful FLOPs per trained token ({results['flops_per_trained_token'] / 1e9:.2f} GFLOP: transformer "
                         f"linear layers forward and input-gradient, LoRA factors; attention and the LM head not counted) times "
                         f"the positions computed per second (a packed row's shared opening once, learn/packing.py), over the faster matmul peak measured in this run (2048^3: bf16 {peak['bf16_gflops']:.0f} "
                         f"GFLOP/s, fp32 {peak['fp32_gflops']:.0f}).", ""] if peak else [])
    return [f"{results['facts']} TOFU facts; the default strategy's sleep synthesised {results['examples']} examples (plus "
            f"{results['replay_examples']} rehearsal examples for replay). The trainer rows retrain on those examples for one "
            f"epoch (an objective with replay adds the rehearsal examples, one with kl the KL anchor passes); the naive fine-tune trains "
            f"on the raw sentences as the baseline arm does. Peak memory is the process's resident set, sampled every 20 ms (everything the process holds included: the "
            f"base model, the embedder, and in `bench all` the arms of earlier studies); 'increase' is over the row's start "
            f"and includes each row's copy of the model.", "",
            *utilisation_note,
            *markdown_table(["what", "wall s", "train s", "tokens", "tokens/s", "MFU", "peak RSS MiB", "increase MiB"], rows),
            *_stage_table(results.get("sleep_stage_seconds", {})),
            *_stage_table(results.get("sleep_gate_seconds", {}), "Inside the gate, per measurement (seconds):"),
            *sleep_against_baseline(results["rows"]),
            *losses(results["rows"], {"tokens_per_second": True, "peak_rss_mib": False})]


def _stage_table(stages: dict[str, dict[str, float]], title: str = "Where one sleep's wall time went, per stage (seconds):") -> list[str]:
    """Where each sleep's wall time went: select (with the base's retention probes, recorded
    on a model's first sleep on a machine and read from the cache after), synthesis
    (model-written questions and answers), training, the gate's measurements, and the commit
    (writing the version, and whatever the stages above missed). With `title`, any other
    breakdown of the same shape (the gate's parts)."""
    if not any(stages.values()):
        return []
    names = _stage_names(stages)
    rows = [[strategy, *(each.get(name, 0.0) for name in names), sum(each.values())] for strategy, each in stages.items()]
    shares = [[f"{strategy}, share", *(f"{each.get(name, 0.0) / max(sum(each.values()), 1e-9):.0%}" for name in names), "100%"]
              for strategy, each in stages.items()]
    return [title, "",
            *markdown_table(["sleep", *names, "total"], rows + shares)]


def _stage_names(stages: dict[str, dict[str, float]]) -> list[str]:
    return list(dict.fromkeys(name for each in stages.values() for name in each))


def sleep_against_baseline(rows: dict[str, Any]) -> list[str]:
    """The report's verdict on cost: a whole sleep against the naive fine-tune of the same run,
    worded as a loss when the sleep is slower (the README's rule: say where lifelong loses)."""
    sleep = next((r for name, r in rows.items() if name.startswith("lifelong sleep")), None)
    baseline = next((r for name, r in rows.items() if name.startswith("naive fine-tune")), None)
    if not sleep or not baseline or not baseline["seconds"]:
        return []
    ratio = sleep["seconds"] / baseline["seconds"]
    verdict = (f"{ratio:.1f} times longer: lifelong loses on cost" if ratio > 1
               else f"{1 / ratio:.1f} times faster: lifelong wins on cost")
    return [f"A whole sleep takes {sleep['seconds']:.0f} s against the naive fine-tune's {baseline['seconds']:.1f} s "
            f"({verdict}), training on {sleep['tokens']:,} tokens against {baseline['tokens']:,}.", ""]


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.6 * len(names) + 1.5), sharey=True)
    for ax, (key, label) in zip(axes, (("seconds", "wall s"), ("tokens_per_second", "tokens/s"),
                                       ("peak_rss_mib", "peak RSS MiB")), strict=True):
        bars = ax.barh(range(len(names)), [rows[n][key] for n in names], color="tab:blue")
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xlabel(label)
    axes[0].set_yticks(range(len(names)), [textwrap.fill(n, 38) for n in names], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(f"cost: {results['facts']} TOFU facts, {results['examples']} synthesised examples", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "cost.png", dpi=120)
    plt.close(fig)
    stages = results.get("sleep_stage_seconds", {})
    if stages:
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(stages) + 1.5))
        names = _stage_names(stages)
        left = [0.0] * len(stages)
        for name in names:
            widths = [each.get(name, 0.0) for each in stages.values()]
            ax.barh(range(len(stages)), widths, left=left, label=name)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(range(len(stages)), list(stages), fontsize=8)
        ax.set_xlabel("wall s")
        ax.legend(fontsize=8, ncol=len(names), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        fig.suptitle(f"one sleep of {results['facts']} TOFU facts, stage by stage", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "cost_stages.png", dpi=120)
        plt.close(fig)
