"""One way of measuring every arm: the same prompts, greedy decoding and scores for all.

Acquisition: closed-book answers scored by normalised containment of the key span, SQuAD
token F1 and ROUGE-L recall. Retention: known facts the base completes correctly (cloze),
two 4-way multiple-choice sets, perplexity on held-out text, and KL to the base along its
own continuations of the held-out anchor prompts.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import threading
import time
from collections.abc import Sequence
from statistics import fmean
from typing import Any

from lifelong.bench.data import leaked_questions
from lifelong.evaluate.knowledge import (
    QA,
    answer_closed_book,
    cloze_correct,
    multiple_choice_accuracy,
)
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.progress import status
from lifelong.prompt import closed_book, content_words
from lifelong.scoring import contains_answer, normalize_answer, rouge_l_recall, token_f1

Contexts = Sequence[Sequence[Memory]] | None
MAX_ANSWER_TOKENS = 40


def acquisition(lm: LanguageModel, qas: Sequence[QA], contexts: Contexts = None) -> dict[str, Any]:
    """Scores of the closed-book (or, with `contexts`, retrieval-augmented) answers."""
    return score_predictions(answer_closed_book(lm, qas, contexts, max_new_tokens=MAX_ANSWER_TOKENS).predictions, qas)


def score_predictions(predictions: Sequence[str], qas: Sequence[QA]) -> dict[str, Any]:
    """Containment of the key span, SQuAD token F1 against it, and ROUGE-L recall of the reference."""
    pairs = list(zip(predictions, qas, strict=True))
    mean = lambda values: fmean(values) if pairs else 0.0  # noqa: E731
    return {"containment": mean([contains_answer(p, qa.key) for p, qa in pairs]),
            "token_f1": mean([token_f1(p, qa.key) for p, qa in pairs]),
            "rouge_l_recall": mean([rouge_l_recall(p, qa.answer) for p, qa in pairs]),
            "questions": len(pairs), "predictions": list(predictions)}


def perplexity(lm: LanguageModel, texts: Sequence[str], max_tokens: int = 512) -> float:
    """exp(mean next-token NLL) over the texts, read as plain text (no chat template)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.inference_mode():
        for indices, weights in lm.routes(texts):
            for index in indices:
                ids = lm.encode(texts[index])[:max_tokens]
                if len(ids) < 2:
                    continue
                with weights:
                    logits = lm.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
                total += float(F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum"))
                count += len(ids) - 1
    return math.exp(total / count) if count else float("nan")


def trained_anchors(lm: LanguageModel) -> list[tuple[str, str]]:
    """(prompt, what the frozen model says) for every prompt the anti-forgetting objectives
    train on: rehearsal questions and the KL training anchors."""
    from lifelong.learn.anchors import TRAINING_CHAT, TRAINING_RAW
    from lifelong.learn.rehearsal import base_rehearsal

    pairs = [(e.prompt[-1]["content"], e.answer) for e in base_rehearsal(lm)]
    pairs += list(zip(TRAINING_CHAT, lm.generate_batch([closed_book(p) for p in TRAINING_CHAT], max_new_tokens=16), strict=True))
    pairs += list(zip(TRAINING_RAW, lm.complete_batch(list(TRAINING_RAW), max_new_tokens=16), strict=True))
    return pairs


def shared_fact(question: str, answer: str, anchors: Sequence[tuple[str, str]]) -> str | None:
    """The anchor prompt that trains this item's fact: it shares a content word with the
    question and its text or the model's reply to it contains the answer."""
    gold, asked = f" {normalize_answer(answer)} ", content_words(question)
    for prompt, said in anchors:
        if gold.strip() and gold in f" {normalize_answer(prompt + ' ' + said)} " and asked & content_words(prompt):
            return prompt
    return None


class RetentionSuite:
    """What the base model knew, and how much of it a changed model still knows. Items whose
    fact the anti-forgetting objectives train on are left out, for every arm alike."""

    def __init__(self, base: LanguageModel, known_rows: list[dict], world_mcq: list[dict], authors_mcq: list[dict],
                 held_out_text: list[str]) -> None:
        self.base = base
        self.excluded: list[dict[str, str]] = []
        with status("retention: leaving out items whose fact rehearsal or the KL anchors train on"):
            anchors = trained_anchors(base)
            known_rows = self._without(known_rows, "known facts", "prompt", anchors)
            self.world_mcq = self._without(world_mcq, "world MCQ", "question", anchors)
            self.authors_mcq = self._without(authors_mcq, "authors MCQ", "question", anchors)
        with status(f"retention: screening {len(known_rows)} known facts for those the base completes correctly"):
            correct = cloze_correct(base, known_rows)
        self.screened = len(known_rows)
        self.known = [row for row, ok in zip(known_rows, correct, strict=True) if ok]
        self.held_out_text = held_out_text

    def _without(self, rows: list[dict], name: str, field: str, anchors: Sequence[tuple[str, str]]) -> list[dict]:
        kept = []
        for row in rows:
            anchor = shared_fact(row[field], row["answer"], anchors)
            if anchor:
                self.excluded.append({"set": name, "item": row[field], "answer": row["answer"], "because": anchor})
            else:
                kept.append(row)
        return kept

    def leave_out_trained(self, training_texts: list[str]) -> None:
        """Drop items an arm's training data contains (counted as excluded, never scored)."""
        for name, field, attribute in (("known facts", "prompt", "known"), ("world MCQ", "question", "world_mcq"),
                                       ("authors MCQ", "question", "authors_mcq")):
            rows = getattr(self, attribute)
            leaked = set(leaked_questions([r[field] for r in rows], training_texts))
            self.excluded += [{"set": name, "item": r[field], "answer": r["answer"], "because": "in training data"}
                              for r in rows if r[field] in leaked]
            setattr(self, attribute, [r for r in rows if r[field] not in leaked])

    def general_inputs(self) -> list[str]:
        """Every retention input as a router would read it: cloze prompts, MCQ questions, held-out text."""
        return ([r["prompt"] for r in self.known] + [r["question"] for r in self.world_mcq + self.authors_mcq]
                + list(self.held_out_text))

    def sizes(self) -> dict[str, int]:
        return {"known_facts_screened": self.screened, "known_facts_kept": len(self.known), "world_mcq": len(self.world_mcq),
                "authors_mcq": len(self.authors_mcq), "held_out_texts": len(self.held_out_text), "excluded": len(self.excluded)}

    def measure(self, lm: LanguageModel, retrieve: Any = None) -> dict[str, float]:
        """`retrieve(question) -> memories` puts retrieved notes into the multiple-choice prompts
        (memory arms); cloze, perplexity and KL read the weights alone."""
        from lifelong.consolidate import kl_to_base

        known = cloze_correct(lm, self.known) if self.known else []
        world_ctx = [retrieve(r["question"]) for r in self.world_mcq] if retrieve else None
        authors_ctx = [retrieve(r["question"]) for r in self.authors_mcq] if retrieve else None
        return {
            "known_facts": sum(known) / len(known) if known else float("nan"),
            "world_mcq": multiple_choice_accuracy(lm, self.world_mcq, world_ctx),
            "authors_mcq": multiple_choice_accuracy(lm, self.authors_mcq, authors_ctx),
            "perplexity": perplexity(lm, self.held_out_text),
            "kl_drift": kl_to_base(self.base, lm),
        }


def resident_bytes() -> int:
    """This process's resident set size now (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakMemory:
    """Peak resident memory while a block runs, sampled every 20 ms on a thread (torch's CPU
    allocations are invisible to tracemalloc, and ru_maxrss never goes down between runs)."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())

    def to_dict(self) -> dict[str, float]:
        return {"peak_rss_mib": self.peak / 2**20, "peak_increase_mib": (self.peak - self.start) / 2**20}


def release_memory() -> None:
    """Hand freed memory back to the OS, so one row's peak does not hide in the next's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
