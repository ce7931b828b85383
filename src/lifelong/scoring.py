"""Answer matching shared by the demo, tests and benchmarks (SQuAD-style normalisation)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse spaces; '4.8 GHz' -> '48 ghz'."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def contains_answer(prediction: str, gold: str) -> bool:
    """Normalised containment: the key answer span appears in the prediction."""
    gold_norm = normalize_answer(gold)
    return bool(gold_norm) and f" {gold_norm} " in f" {normalize_answer(prediction)} "


def rouge_l_recall(prediction: str, reference: str) -> float:
    """Share of the reference's tokens recovered in order (LCS / reference length), as TOFU reports."""
    ref, pred = normalize_answer(reference).split(), normalize_answer(prediction).split()
    if not ref or not pred:
        return 0.0
    previous = [0] * (len(pred) + 1)
    for r in ref:
        current = [0]
        for j, p in enumerate(pred):
            current.append(previous[j] + 1 if r == p else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1] / len(ref)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 over normalised tokens."""
    from collections import Counter

    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def mentioned(questions: Sequence[str], texts: Sequence[str]) -> list[str]:
    """The questions that appear, normalised and as whole words, inside any of the texts."""
    corpus = [f" {normalize_answer(t)} " for t in texts]
    found = []
    for question in questions:
        q = f" {normalize_answer(question)} "
        if q.strip() and any(q in text for text in corpus):
            found.append(question)
    return found
