"""How should a module meet retrieved notes? Several ways to serve `lifelong + memory`, on SQuAD
single passages, side by side with memory alone and the module closed-book.

On SQuAD single passages the served `lifelong + memory` answered exactly what memory alone
answered (the module steps aside for a quoted note, and the base's answers always cite the
notes, so the grounded fallback never fires). This study sleeps on each passage as
`lifelong bench acquisition-squad --squad-modes single` does (a fresh mind per passage, the
default strategy, scoring questions kept out of training) and answers every question in each way:

- memory: the base reading the 3 retrieved notes (the memory arm);
- closed-book: the served model without notes (the lifelong arm);
- served: the product as it serves today (step aside for a quoted note, grounded fallback);
- module reads: the question's module reads the notes itself (no stepping aside);
- recitation: the module's closed-book answer is quoted as one more note, first, and the base
  reads it with the retrieved notes;
- module reads + recitation: both;
- chooser, module scores: where a module claims the question, of the served answer and the
  closed-book one, the one that module finds likelier (per token) with the notes in its prompt;
- chooser, base scores: the same choice made by the base with the notes;
- product of experts: where a module claims the question, greedy decoding from the sum of two
  next-token log-distributions, the base reading the notes and the module answering the bare
  question (each stream keeps its own KV cache); elsewhere the memory answer. On 30 TOFU facts
  a one-off script of this gave 0.633 against memory's 0.567.

`--ways` picks a subset (memory and closed-book are always answered: the others build on them).

    .venv/bin/python benchmarks/squad_reading.py --first 10 --count 10 [--data ../shared/data]

Writes results/squad_reading/<UTC>/results.json (every answer) and prints containment per way.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import results_dir, write_json

from lifelong.bench.arms import make_mind, sleep_once
from lifelong.bench.context import DEFAULT_STRATEGY, BenchSettings
from lifelong.bench.data import BenchData
from lifelong.bench.squad_study import passage_records
from lifelong.consolidate import SleepConfig
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.memory.records import Memory
from lifelong.bench.runner import load_base
from lifelong.model.language_model import LanguageModel
from lifelong.progress import console
from lifelong.prompt import build_messages, closed_book
from lifelong.scoring import contains_answer

WAYS = ("memory", "closed-book", "served", "module reads", "recitation", "module reads + recitation",
        "chooser, module scores", "chooser, base scores", "product of experts")
MAX_TOKENS = 48


def recitation_note(text: str) -> Memory:
    """The module's own answer, quoted as a note the way a retrieved memory is."""
    return Memory(0, text, "module", "user", "default", "recitation", None, 0.0, 0.0, None, None, "")


@torch.inference_mode()
def product_of_experts(served: Any, question: str, notes: list[Memory], module: str, max_tokens: int) -> str:
    """Greedy decoding from log p_base(token | notes, question) + log p_module(token | question):
    a token both experts find likely wins, so the module can pull the base's reading toward what
    it knows, and the notes can overrule a module that knows nothing of the question."""
    prompts = [served.encode(served.format_chat(build_messages(question, notes))),
               served.encode(served.format_chat(closed_book(question)))]
    weights = [served.weights_for(None), served.weights_for(module)]
    for ids in prompts:
        served.check_fits(len(ids), max_tokens)
    stops = set(served.stop_ids())
    caches: list[Any] = [None, None]
    inputs = [torch.tensor([ids]) for ids in prompts]
    answer: list[int] = []
    for _ in range(max_tokens):
        total = None
        for stream in (0, 1):
            with weights[stream]:
                result = served.model(input_ids=inputs[stream], past_key_values=caches[stream], use_cache=True)
            caches[stream] = result.past_key_values
            log_probs = torch.log_softmax(result.logits[0, -1].float(), dim=-1)
            total = log_probs if total is None else total + log_probs
        token = int(total.argmax())
        if token in stops:
            break
        answer.append(token)
        inputs = [torch.tensor([[token]]), torch.tensor([[token]])]
    return served.tokenizer.decode(answer, skip_special_tokens=True).strip()


def answer_ways(base: LanguageModel, served: Any, question: str, notes: list[Memory], ways: tuple[str, ...]) -> dict[str, str]:
    closed = served.generate_batch([closed_book(question)], MAX_TOKENS)[0]
    with_notes = build_messages(question, notes)
    out = {"memory": base.generate_batch([with_notes], MAX_TOKENS)[0], "closed-book": closed}
    with_recitation = build_messages(question, [recitation_note(closed), *notes])
    module = served.modules_for([question])[0]  # None: no module claims it, nothing to add to the notes
    if "served" in ways or any(w.startswith("chooser") for w in ways):
        out["served"] = served.generate_batch([with_notes], MAX_TOKENS)[0]
    if any("recitation" in w for w in ways):
        out["recitation"] = base.generate_batch([with_recitation], MAX_TOKENS)[0]
    if any(w.startswith("module reads") for w in ways):
        with served.generation_weights(closed_book(question)):  # the question's own route, notes or not
            out["module reads"] = LanguageModel.generate_batch(served, [with_notes], MAX_TOKENS)[0]
            out["module reads + recitation"] = LanguageModel.generate_batch(served, [with_recitation], MAX_TOKENS)[0]
    if any(w.startswith("chooser") for w in ways):
        pair = [out["served"], closed]
        with served.generation_weights(closed_book(question)):
            by_module = LanguageModel.score(served, with_notes, pair, normalize=True)
        by_base = base.score(with_notes, pair, normalize=True)
        out["chooser, module scores"] = pair[int(module is not None and by_module[1] > by_module[0])]
        out["chooser, base scores"] = pair[int(module is not None and by_base[1] > by_base[0])]
    if "product of experts" in ways:
        out["product of experts"] = (product_of_experts(served, question, notes, module, MAX_TOKENS)
                                     if module is not None else out["memory"])
    return {w: out[w] for w in ways}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=int, default=0, help="index of the first passage (default 0)")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated subset of: {', '.join(WAYS)}")
    parser.add_argument("--recite", action=argparse.BooleanOptionalAction, default=SleepConfig().recite,
                        help="sleep with span questions about a passage's sentences answered by the whole sentence (the default)")
    args = parser.parse_args()
    ways = tuple(dict.fromkeys(["memory", "closed-book", *(w.strip() for w in args.ways.split(",") if w.strip())]))
    unknown = [w for w in ways if w not in WAYS]
    if unknown:
        parser.error(f"unknown way(s) {unknown}; choose from {', '.join(WAYS)}")
    settings = BenchSettings()
    passages = BenchData(args.data).passages(args.first + args.count)[args.first:]
    base, embedder = load_base(settings.model), MiniLMEmbedder()
    out = results_dir("squad_reading")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="squad-reading-") as scratch:
        for number, passage in enumerate(passages, start=args.first + 1):
            console().print(f"[bold]passage {number}[/bold]: {passage.title}")
            path = Path(scratch) / "mind"
            shutil.rmtree(path, ignore_errors=True)
            mind = make_mind(path, base, embedder, passage_records(passage.title, passage.text))
            questions = [qa.question for qa in passage.questions]
            slept = sleep_once(mind, DEFAULT_STRATEGY, settings.train(), "squad-reading", questions,
                               {"recite": args.recite})
            served = mind.version_model(slept["info"]["version"])
            for qa in passage.questions:
                notes = [h.memory for h in mind.recall(qa.question, 3, include_superseded=False)]
                answers = answer_ways(base, served, qa.question, notes, ways)
                rows.append({"passage": passage.title, "question": qa.question, "key": qa.key, "answers": answers,
                             "right": {w: contains_answer(a, qa.key) for w, a in answers.items()},
                             "promoted": slept["info"]["activated"]})
            mind.close()
            totals = {w: sum(r["right"][w] for r in rows) for w in ways}
            console().print(f"  after {len(rows)} questions: " + ", ".join(f"{w} {n}" for w, n in totals.items()))
    summary = {w: sum(r["right"][w] for r in rows) / len(rows) for w in ways}
    write_json(out / "results.json", {"passages": [args.first, args.first + args.count], "questions": len(rows),
                                      "ways": list(ways), "recite": args.recite,
                                      "seconds": time.perf_counter() - started, "containment": summary, "rows": rows})
    for way in ways:
        console().print(f"{way:>28}: {summary[way]:.3f}")
    console().print(f"results: {out}")


if __name__ == "__main__":
    main()
