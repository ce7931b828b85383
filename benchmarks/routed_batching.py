"""Does a routed library answer faster when every route shares a generation batch? A library
of K LoRA modules on the default model, each keyed on 10 TOFU facts as a 10-fact sleep keys
its module, answers closed-book questions (those facts' own questions, routed to their
modules, and questions about other authors, mostly routed to the base weights):

- grouped (the way before): the prompts are split by route and each group is generated with
  its adapter selected, or every adapter off, so ten modules mean eleven small batches;
- mixed (now): one set of batches for all routes, each row adding only its own adapter's LoRA
  product (PEFT's mixed-batch inference; the base rows add none).

It reports wall seconds per answer for each, twice in alternation (the spread of this shared
machine shows), and how many answers differ between the two ways (they should not: the
arithmetic of every row is the same). The modules are random LoRA weights, not trained ones:
speed does not depend on what they learned, and random weights large enough to change answers
show that each row really ran its own module. Writes results/routed_batching/<time>/results.json.

    .venv/bin/python benchmarks/routed_batching.py [--data ../shared/data] [--modules 10] [--other 28]

About 5 minutes on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch
from _common import machine_info, print_table, results_dir, write_json

from lifelong.learn.router import ModuleKeys, Router, keyed_texts
from lifelong.learn.trainer import TrainConfig, attach_lora
from lifelong.memory.embedder import MiniLMEmbedder
from lifelong.model.language_model import LanguageModel, weight_sharing_copy
from lifelong.model.loader import load_model
from lifelong.model.routed import RoutedLanguageModel
from lifelong.prompt import closed_book

ANSWER_TOKENS = 48  # the gate's (evaluate/probes.PROBE_ANSWER_TOKENS)
FACTS_PER_MODULE = 10  # a 10-fact sleep, as in the sequential study
LORA_B_STD = 0.02  # random module weights: large enough that module rows answer differently from the base


def library(lm: LanguageModel, facts: list[str], modules: int, embedder: MiniLMEmbedder) -> RoutedLanguageModel:
    """`modules` random LoRA adapters side by side in one PeftModel, module j keyed on facts
    [10j, 10j+10) exactly as a sleep keys the module it trains."""
    peft = attach_lora(LanguageModel(weight_sharing_copy(lm.model), lm.tokenizer, lm.name, lm.needs_bos), TrainConfig())
    names = [f"m{j}" for j in range(modules)]
    for name in names:
        peft.add_adapter(name, peft.peft_config["default"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter_name, parameter in peft.named_parameters():
            if ".lora_B." in parameter_name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * LORA_B_STD)
    peft.eval()
    keys = []
    for j, name in enumerate(names):
        own = facts[j * FACTS_PER_MODULE:(j + 1) * FACTS_PER_MODULE]
        keyed = keyed_texts(own, list(range(j * FACTS_PER_MODULE, j * FACTS_PER_MODULE + len(own))))
        keys.append(ModuleKeys(name, embedder.embed([text for text, _ in keyed])))
    return RoutedLanguageModel(peft, lm.tokenizer, lm.name, lm.needs_bos, Router(embedder, keys))


def grouped(routed: RoutedLanguageModel, prompts: list, routes: list[str | None]) -> list[str]:
    """Each route's prompts in batches of their own, its adapter selected (the way before)."""
    answers: list[str] = [""] * len(prompts)
    for module in dict.fromkeys(routes):
        indices = [i for i, r in enumerate(routes) if r == module]
        with routed.weights_for(module):
            for i, answer in zip(indices, LanguageModel.generate_batch(routed, [prompts[i] for i in indices], ANSWER_TOKENS),
                                 strict=True):
                answers[i] = answer
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--modules", type=int, default=10, help="modules in the library (10 facts each)")
    parser.add_argument("--other", type=int, default=28, help="questions about facts no module learned")
    args = parser.parse_args()

    rows = [json.loads(line) for line in (args.data / "tofu_authors_dev.jsonl").read_text().splitlines()]
    learned = rows[: args.modules * FACTS_PER_MODULE]
    other = rows[len(learned): len(learned) + args.other]
    questions = [r["question"] for r in learned + other]
    prompts = [closed_book(q) for q in questions]

    lm = load_model("smollm2-135m")
    routed = library(lm, [r["answer"] for r in learned], args.modules, MiniLMEmbedder())
    routes = routed.modules_for(questions)
    print(f"{len(prompts)} questions; routes: {dict(Counter(r or 'base' for r in routes))}", flush=True)
    base_answers = lm.generate_batch(prompts, ANSWER_TOKENS)
    LanguageModel.generate_batch(routed, prompts[:2], max_new_tokens=4)  # first call pays kernel selection

    runs: list[dict[str, object]] = []
    answers: dict[str, list[str]] = {}
    for repeat in range(2):
        for way in ("grouped", "mixed"):
            start = time.perf_counter()
            answers[way] = grouped(routed, prompts, routes) if way == "grouped" else routed.generate_batch(prompts, ANSWER_TOKENS)
            seconds = time.perf_counter() - start
            runs.append({"way": way, "repeat": repeat + 1, "seconds": seconds, "seconds_per_answer": seconds / len(prompts)})
            print(f"{way} (run {repeat + 1}): {seconds / len(prompts):.3f} s per answer", flush=True)
    module_rows = [i for i, r in enumerate(routes) if r is not None]
    base_rows = [i for i, r in enumerate(routes) if r is None]
    summary = {
        "questions": len(prompts), "modules": args.modules, "routes": dict(Counter(r or "base" for r in routes)),
        "answers_differing_mixed_vs_grouped": sum(a != b for a, b in zip(answers["mixed"], answers["grouped"], strict=True)),
        "module_rows_answering_unlike_the_base": sum(answers["mixed"][i] != base_answers[i] for i in module_rows),
        "module_rows": len(module_rows),
        "base_rows_answering_like_the_base": sum(answers["mixed"][i] == base_answers[i] for i in base_rows),
        "base_rows": len(base_rows),
    }
    out = results_dir("routed_batching")
    write_json(out / "results.json", {"study": "routed_batching", "machine": machine_info(), "answer_tokens": ANSWER_TOKENS,
                                      "lora_b_std": LORA_B_STD, "summary": summary, "runs": runs,
                                      "answers": {way: answers[way] for way in answers}, "questions": questions})
    print_table("Routed library: generation grouped by route vs mixed batches", ["way", "run", "s per answer"],
                [[r["way"], r["repeat"], r["seconds_per_answer"]] for r in runs])
    print(json.dumps(summary, indent=1))
    print(out / "results.json")


if __name__ == "__main__":
    main()
