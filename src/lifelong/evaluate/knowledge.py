"""What a model knows, measured the way the field reports it: closed-book QA scored by
normalised containment of the key span and ROUGE-L recall, cloze completion of known facts,
and multiple choice by answer likelihood. Used by the gate's reports and by benchmarks/.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from lifelong.learn.synthesis import salient_spans
from lifelong.memory.records import Memory
from lifelong.model.language_model import LanguageModel
from lifelong.prompt import build_messages
from lifelong.scoring import contains_answer, normalize_answer, rouge_l_recall


@dataclass(frozen=True)
class QA:
    question: str
    answer: str  # the reference answer (a full sentence in TOFU)
    key: str  # the span a correct answer must contain


def key_span(question: str, answer: str) -> str:
    """The first salient span of the answer that the question does not already give away."""
    asked = set(normalize_answer(question).split())
    for span in sorted(salient_spans(answer), key=answer.find):
        if not set(normalize_answer(span).split()) & asked:
            return span
    return answer


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def qa_from_rows(rows: list[dict]) -> list[QA]:
    """Question/answer rows (TOFU's form) as QA items, each with its answer's key span."""
    return [QA(r["question"], r["answer"], key_span(r["question"], r["answer"])) for r in rows]


def load_qa(path: Path) -> list[QA]:
    return qa_from_rows(read_jsonl(path))


@dataclass(frozen=True)
class QAScore:
    containment: float
    rouge_l: float
    predictions: list[str]

    def to_dict(self) -> dict:
        return {"containment": self.containment, "rouge_l_recall": self.rouge_l}


def answer_closed_book(lm: LanguageModel, qas: Sequence[QA], context: Sequence[Sequence[Memory]] | None = None,
                       max_new_tokens: int = 40) -> QAScore:
    """Ask every question (with its memories in the prompt when `context` is given), greedy."""
    prompts = [build_messages(qa.question, context[i] if context else []) for i, qa in enumerate(qas)]
    predictions = lm.generate_batch(prompts, max_new_tokens=max_new_tokens)
    return QAScore(
        containment=fmean(contains_answer(p, qa.key) for p, qa in zip(predictions, qas, strict=True)) if qas else 0.0,
        rouge_l=fmean(rouge_l_recall(p, qa.answer) for p, qa in zip(predictions, qas, strict=True)) if qas else 0.0,
        predictions=predictions,
    )


def cloze_correct(lm: LanguageModel, rows: Sequence[dict], max_new_tokens: int = 8) -> list[bool]:
    """Known facts as plain completions ("Beats Music is owned by" -> "Apple"), one verdict each."""
    completions = lm.complete_batch([r["prompt"] for r in rows], max_new_tokens=max_new_tokens)
    return [contains_answer(c, r["answer"]) for c, r in zip(completions, rows, strict=True)]


def multiple_choice_accuracy(lm: LanguageModel, rows: Sequence[dict],
                             contexts: Sequence[Sequence[Memory]] | None = None) -> float:
    """Pick the option with the highest length-normalised likelihood after the question (with
    its retrieved memories in the prompt when `contexts` is given)."""
    if not rows:
        return 0.0
    hits = 0
    for i, row in enumerate(rows):
        options = [row["answer"], *row["distractors"]]
        scores = lm.score(build_messages(row["question"], contexts[i] if contexts else []), options, normalize=True)
        hits += scores.index(max(scores)) == 0
    return hits / len(rows)
