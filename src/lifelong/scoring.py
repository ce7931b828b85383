"""Answer matching shared by the demo, tests and benchmarks (SQuAD-style normalisation)."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse spaces; '4.8 GHz' -> '48 ghz'."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def contains_answer(prediction: str, gold: str) -> bool:
    """Normalised containment: the key answer span appears in the prediction."""
    gold_norm = normalize_answer(gold)
    return bool(gold_norm) and f" {gold_norm} " in f" {normalize_answer(prediction)} "
