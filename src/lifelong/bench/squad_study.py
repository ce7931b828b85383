"""acquisition-squad: the knowledge-incorporation protocol of SEAL (Zweiger et al. 2025).

Learn Wikipedia passages, then answer their SQuAD questions without the passage. Modes:
  many          all passages learned at once (one sleep; continued pretraining for the naive arm)
  single        one passage at a time, each into a fresh module, asked only its own questions
  implications  teacher-written implications (SEAL's Qwen2.5-7B self-edits) added as extra
                memories, against the passage alone: the same update algorithm on different data.
                Those passages come without SQuAD questions, so half of each passage's
                implications are held out and turned into questions about spans the passage
                states; the other half may be learned. implications-passage and
                implications-extra run one of its two units each.
Scored by normalised containment of the gold answer and SQuAD token F1.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from lifelong.bench.arms import (
    Arm,
    check_held_out,
    contexts,
    gate_summary,
    lifelong_arm,
    make_mind,
    naive_arm,
    retriever,
    with_memory,
)
from lifelong.bench.context import Bench
from lifelong.bench.data import Passage
from lifelong.bench.measure import acquisition, release_memory, score_predictions
from lifelong.bench.output import markdown_table
from lifelong.bench.verdict import losses
from lifelong.evaluate.knowledge import QA
from lifelong.memory.ingest import MAX_CHUNK_WORDS, chunk_text
from lifelong.memory.records import NewMemory
from lifelong.mind import Mind
from lifelong.progress import console, status


def passage_records(title: str, text: str) -> list[NewMemory]:
    """A passage as `lifelong learn` stores a document: retrieval-sized chunks."""
    chunks = [text.strip()] if len(text.split()) <= MAX_CHUNK_WORDS else chunk_text(text)
    return [NewMemory(c, title or "squad", "user", "default", "document", None) for c in chunks]


def _evaluate(arms: Sequence[Arm], qas: Sequence[QA]) -> dict[str, Any]:
    held_out = check_held_out(arms, [qa.question for qa in qas])
    out: dict[str, Any] = {}
    for arm in arms:
        with status(f"asking {arm.name} {len(qas)} questions"):
            score = acquisition(arm.lm, qas, contexts(arm, [qa.question for qa in qas]))
        out[arm.name] = {**score, "info": arm.info}
    return {"arms": out, "held_out": held_out}


def many_at_once(bench: Bench, label: str, documents: Sequence[tuple[str, str]], qas: Sequence[QA],
                 extra: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Every arm learns all documents (and `extra`, e.g. implications) in one go."""
    s = bench.settings
    records = [r for title, text in [*documents, *extra] for r in passage_records(title, text)]
    source = make_mind(bench.root / f"{label}-memory", bench.base, bench.embedder, records)
    arms = [Arm("base", bench.base), Arm("memory", bench.base, retriever(source))]
    with status(f"{label}: naive fine-tune on {len(documents) + len(extra)} raw texts"):
        arms.append(naive_arm(bench.base, [text for _, text in [*documents, *extra]], s.train()))
    lifelongs = _lifelong_arms(bench, label, records, [qa.question for qa in qas])
    arms += [arm for arm, _ in lifelongs] + [with_memory(*lifelongs[0])]
    return _evaluate(arms, qas)


def _lifelong_arms(bench: Bench, label: str, records: Sequence[NewMemory],
                   held_out: Sequence[str]) -> list[tuple[Arm, Mind]]:
    """One sleep per requested strategy, the default first (it alone also serves with memory);
    with --reuse-minds, a module a --keep-minds run left for these records is scored instead."""
    s, out = bench.settings, []
    for i, strategy in enumerate(s.strategies):
        arm, mind = lifelong_arm(bench.root, f"{label} lifelong" + (f" {i}" if i else ""), bench.base, bench.embedder,
                                 records, strategy, s.train(), held_out, reuse=bench.reuse_minds, synthesis=s.synthesis())
        arm.name = f"lifelong ({strategy})"
        out.append((arm, mind))
    return out


def one_at_a_time(bench: Bench, passages: Sequence[Passage]) -> dict[str, Any]:
    """A fresh module per passage, asked that passage's questions only (every arm, the base
    too, passage by passage); scores pooled over all questions. Each passage is a resumable unit."""
    names = _single_arm_names(bench)
    units = []
    for i, passage in enumerate(passages):
        console().print(f"[bold]single passage {i + 1}/{len(passages)}[/bold]: {passage.title}")
        units.append(bench.unit(f"single/{i}/{passage.title}",
                                lambda passage=passage, i=i: _single_passage(bench, passage, f"single {i + 1:02d}")))
    qas = [qa for p in passages for qa in p.questions]
    out = {name: score_predictions([p for u in units for p in u["predictions"][name]], qas) for name in names}
    verdicts = [u["strategies"] if "strategies" in u else {names[3]: u} for u in units]  # units of older runs: one
    for name in names[3:-1]:
        out[name]["info"] = {"gate_passed": sum(v[name]["passed"] for v in verdicts), "sleeps": len(units),
                             "sleep_seconds_mean": _mean_or_none([v[name]["sleep_seconds"] for v in verdicts])}
    out["naive fine-tune"]["info"] = {"train_seconds_mean": fmean(u["naive_seconds"] for u in units)}
    refusals = [{"passage": p.title + (f" ({name})" if len(names) > 5 else ""), "reasons": v["reasons"]}
                for p, by_arm in zip(passages, verdicts, strict=True) for name, v in by_arm.items()
                if not v["passed"] and "reasons" in v]
    return {"arms": out, "held_out": _pooled_held_out(units, len(qas)), "refusals": refusals}


def _mean_or_none(seconds: Sequence[float | None]) -> float | None:
    """Mean sleep time over the passages that slept (a module reused from --keep-minds did not)."""
    slept = [s for s in seconds if s is not None]
    return fmean(slept) if slept else None


def _pooled_held_out(units: Sequence[dict[str, Any]], questions: int) -> dict[str, Any]:
    """Every passage's held-out check, summed (a leak stops the run inside its unit; units
    from before this summary was kept only say that they passed)."""
    checked = [u["held_out"] for u in units if "held_out" in u]
    texts: dict[str, int] = {}
    for summary in checked:
        for arm, count in summary["training_texts_checked"].items():
            texts[arm] = texts.get(arm, 0) + count
    return {"questions": questions, "training_texts_checked": texts, "units_with_counts": len(checked), "leaked": 0}


def _single_arm_names(bench: Bench) -> list[str]:
    return ["base", "memory", "naive fine-tune", *(f"lifelong ({s})" for s in bench.settings.strategies), "lifelong + memory"]


def _single_passage(bench: Bench, passage: Passage, label: str) -> dict[str, Any]:
    """Learn one passage into fresh modules (minds named by `label`, one per passage, so a
    --keep-minds run keeps each passage's module) and ask every arm its questions."""
    s = bench.settings
    questions = [qa.question for qa in passage.questions]
    records = passage_records(passage.title, passage.text)
    naive = naive_arm(bench.base, [passage.text], s.train())
    lifelongs = _lifelong_arms(bench, label, records, questions)
    lifelong, mind = lifelongs[0]
    arms = [Arm("base", bench.base), Arm("memory", bench.base, retriever(mind)), naive,
            *(arm for arm, _ in lifelongs), with_memory(lifelong, mind)]
    held_out = check_held_out(arms, questions)
    predictions = {arm.name: acquisition(arm.lm, passage.questions, contexts(arm, questions))["predictions"] for arm in arms}
    result = {"predictions": predictions, "naive_seconds": naive.info["train"]["seconds"], "held_out": held_out,
              "strategies": {arm.name: {k: arm.info[k] for k in ("passed", "reasons", "sleep_seconds")} for arm, _ in lifelongs}}
    for _, each in lifelongs:
        each.close()
        if not bench.keep_minds:
            shutil.rmtree(each.path, ignore_errors=True)  # a temporary run needs no passage's mind after it
    del arms, naive, lifelong, mind, lifelongs
    release_memory()  # a model copy per arm and passage: none may outlive its passage
    return result


def run(bench: Bench) -> dict[str, Any]:
    s = bench.settings
    results: dict[str, Any] = {"modes": {}}
    if {"many", "single"} & set(s.squad_modes):
        passages = bench.data.passages(s.passages)
        qas = [qa for p in passages for qa in p.questions]
        results.update(passages=len(passages), questions=len(qas))
        if "many" in s.squad_modes:
            console().rule(f"many at once: {len(passages)} passages")
            results["modes"]["many"] = bench.unit("many", lambda: many_at_once(bench, "many", [(p.title, p.text) for p in passages], qas))
        if "single" in s.squad_modes:
            console().rule(f"one passage at a time: {len(passages)} fresh modules")
            results["modes"]["single"] = one_at_a_time(bench, passages)
    passage_only = bool({"implications", "implications-passage"} & set(s.squad_modes))
    with_extra = bool({"implications", "implications-extra"} & set(s.squad_modes))
    if passage_only or with_extra:
        implied = bench.data.implication_passages(s.implication_passages)
        qas = [qa for p in implied for qa in p.questions]
        documents = [(p.title, p.text) for p in implied]
        extra = [(p.title, "\n".join(p.training)) for p in implied]
        results.update(implication_passages=len(implied), implication_questions=len(qas))
        if passage_only:
            console().rule(f"implications: {len(implied)} passages, passage alone")
            results["modes"]["implications: passage only"] = bench.unit(
                "implications: passage only", lambda: many_at_once(bench, "impl-passage", documents, qas))
        if with_extra:
            console().rule(f"implications: {len(implied)} passages, passage + implications")
            results["modes"]["implications: passage + implications"] = bench.unit(
                "implications: passage + implications", lambda: many_at_once(bench, "impl-extra", documents, qas, extra))
    return results


def report(results: dict[str, Any]) -> list[str]:
    lines = []
    if "passages" in results:
        lines += [f"{results['passages']} SQuAD passages, {results['questions']} questions, asked without the passage "
                  f"(memory arms: the 3 retrieved chunks in the prompt). Scoring questions are never learned; a run stops if "
                  f"one appears in any arm's training data.", ""]
    if "implication_passages" in results:
        lines += [f"Implications: {results['implication_passages']} passages of squad_implications_dev (no SQuAD questions "
                  f"exist for them); {results['implication_questions']} questions made from the held-out half of their "
                  f"implications, each about a span the passage states.", ""]
    for mode, result in results["modes"].items():
        lines += [f"### {mode}", "", *markdown_table(["arm", "containment", "token F1", "gate"],
                                                     [[n, a["containment"], a["token_f1"], gate_summary(a.get("info", {}))]
                                                      for n, a in result["arms"].items()]),
                  *losses(result["arms"], {"containment": True, "token_f1": True, "rouge_l_recall": True}),
                  *_held_out_line(result["held_out"]), *_refusal_lines(result.get("refusals", []))]
    return lines


def _held_out_line(held_out: dict[str, Any]) -> list[str]:
    texts = held_out.get("training_texts_checked") or {}
    checked = f" against {sum(texts.values()):,} training texts" if texts else ""
    return [f"Scoring questions found in any arm's training data: {held_out['leaked']} of {held_out['questions']}{checked}.", ""]


def _refusal_lines(refusals: Sequence[dict[str, Any]]) -> list[str]:
    """Why the gate refused the modules it refused (their predictions are scored all the same)."""
    if not refusals:
        return []
    return [f"The gate refused {len(refusals)} passage module(s); each is scored anyway:", "",
            *[f"- {r['passage']}: {'; '.join(r['reasons'])}" for r in refusals], ""]


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = results["modes"]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.5 * len(modes), 4), squeeze=False)
    for ax, (mode, result) in zip(axes[0], modes.items(), strict=True):
        arms = result["arms"]
        names = list(arms)
        ax.bar(range(len(names)), [arms[n]["containment"] for n in names], color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(mode, fontsize=9)
        ax.set_ylabel("containment")
    fig.tight_layout()
    fig.savefig(out / "acquisition_squad.png", dpi=120)
    plt.close(fig)
