"""The benchmark data: real files nobody on this project wrote, read from --data.

Facts are TOFU answer sentences (fictitious authors: no model knows them before learning);
passages are SQuAD paragraphs with their questions; retention uses known cloze facts, two
multiple-choice sets, and passages never learned by any study as held-out text. Scoring
questions are only ever asked, never turned into memories or training data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lifelong.errors import InputError
from lifelong.evaluate.knowledge import QA, qa_from_rows, read_jsonl
from lifelong.learn.synthesis import QUESTION_WORDS, span_kind, salient_spans
from lifelong.scoring import mentioned, normalize_answer

FILES = {
    "facts": "tofu_authors_dev.jsonl",
    "passages": "squad_passages_dev.jsonl",
    "implications": "squad_implications_dev.jsonl",
    "known": "known_facts_dev.jsonl",
    "world_mcq": "world_facts_mcq.jsonl",
    "authors_mcq": "real_authors_mcq.jsonl",
}
FACTS_PER_AUTHOR = 20  # TOFU lists each fictitious author's 20 questions together, author after author
HELD_OUT_TEXTS = 50  # the last passages of the SQuAD file: perplexity text, never learned
NEAR_COPY = 0.6  # word overlap (Jaccard) at which a held-out implication counts as a copy of a learned one


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    questions: list[QA]


@dataclass(frozen=True)
class ImplicationPassage:
    """A passage with teacher-written implications: every other one is training data, the
    rest become scoring questions about spans the passage states."""

    id: str
    title: str
    text: str
    training: list[str]
    questions: list[QA]


class BenchData:
    def __init__(self, root: Path, passages_file: Path | None = None) -> None:
        if not root.is_dir():
            raise InputError(f"--data {root} is not a directory; pass the folder holding {FILES['facts']} and the other benchmark files")
        self.root = root
        self.passages_file = passages_file

    def _read(self, key: str) -> list[dict]:
        if key == "passages" and self.passages_file:
            if not self.passages_file.is_file():
                raise InputError(f"--passages-file {self.passages_file} is missing; pass a SQuAD-shaped JSONL file")
            return read_jsonl(self.passages_file)
        path = self.root / FILES[key]
        if not path.is_file():
            raise InputError(f"{path} is missing; pass --data with a folder holding {FILES[key]}")
        return read_jsonl(path)

    def facts(self, n: int, option: str = "--facts") -> list[QA]:
        """The first n TOFU questions whose answer has a key span the question does not give away."""
        return _at_least([qa for qa in self.all_facts() if qa.key != qa.answer][:n], n, option, FILES["facts"])

    def facts_by_author(self, per_author: int, n: int, option: str) -> list[list[QA]]:
        """The first `per_author` usable facts (as `facts` filters them) of each author with that
        many, for as many authors as `n` facts need (the last may give fewer), grouped by author:
        TOFU's forget sets are whole authors, so a study can forget all it taught about a person.
        A row's author is its `author` field, or else its block of FACTS_PER_AUTHOR rows (TOFU's
        layout)."""
        rows = self._read("facts")
        authors: dict[str, list[QA]] = {}
        for index, (row, qa) in enumerate(zip(rows, qa_from_rows(rows), strict=True)):
            if qa.key != qa.answer:
                authors.setdefault(str(row.get("author", index // FACTS_PER_AUTHOR)), []).append(qa)
        groups: list[list[QA]] = []
        for facts in authors.values():
            take = min(per_author, n - sum(map(len, groups)))
            if take <= 0:
                break
            if len(facts) >= take:
                groups.append(facts[:take])
        _at_least([qa for group in groups for qa in group], n, option, f"{FILES['facts']} (at most {per_author} per author)")
        return groups

    def all_facts(self) -> list[QA]:
        """Every TOFU question with its answer and key span, in file order."""
        return qa_from_rows(self._read("facts"))

    def fact_rows(self) -> list[dict]:
        return self._read("facts")

    def passages(self, n: int) -> list[Passage]:
        rows = self._read("passages")
        if len(rows) < n + HELD_OUT_TEXTS and self.passages_file is None:
            raise InputError(f"--passages {n} leaves fewer than {HELD_OUT_TEXTS} of {len(rows)} passages as held-out text; use at most {len(rows) - HELD_OUT_TEXTS}")
        for i, row in enumerate(rows[:n]):
            if not row.get("passage") or not row.get("questions"):
                raise InputError(f"passage {i + 1} ({row.get('id')}) needs 'passage' and 'questions' fields")
        passages = [Passage(r["id"], r.get("title", ""), r["passage"],
                            [QA(q["question"], q["answer"], q["answer"]) for q in r["questions"]]) for r in rows[:n]]
        return _at_least(passages, n, "--passages", str(self.passages_file or FILES["passages"]))

    def held_out_text(self) -> list[str]:
        """General text for perplexity: SQuAD passages no study learns (the default file's last 50,
        whatever --passages-file says)."""
        path = self.root / FILES["passages"]
        if not path.is_file():
            raise InputError(f"{path} is missing; pass --data with a folder holding {FILES['passages']}")
        return [r["passage"] for r in read_jsonl(path)[-HELD_OUT_TEXTS:]]

    def implication_passages(self, n: int) -> list[ImplicationPassage]:
        out = []
        for row in self._read("implications")[:n]:
            items = _numbered_items(row["implications"])
            training = items[0::2]
            scored = [s for s in items[1::2] if not _restates(s, training)]
            questions = [q for q in (_implication_question(s, row["passage"]) for s in scored) if q]
            out.append(ImplicationPassage(row["id"], row.get("title", ""), row["passage"], training, questions))
        return _at_least(out, n, "--implication-passages", FILES["implications"])

    def known(self, n: int) -> list[dict]:
        return self._read("known")[:n]

    def world_mcq(self) -> list[dict]:
        return self._read("world_mcq")

    def authors_mcq(self) -> list[dict]:
        return self._read("authors_mcq")


def _numbered_items(text: str) -> list[str]:
    """The teacher's numbered statements ("1. ..."), markup removed, once each; headings,
    prose and copies of the passage around the list are not implications."""
    items: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^\s*\d+[.)]\s+(.*)$", line)
        if match:
            item = match.group(1).replace("**", "").strip()
            if len(item.split()) >= 5 and item not in items:
                items.append(item)
    return items


def _restates(statement: str, learned: list[str], threshold: float = NEAR_COPY) -> bool:
    """Whether a learned statement nearly repeats this one word for word: scoring it would
    ask for text an arm trained on, not for what the passage states."""
    words = set(normalize_answer(statement).split())
    for other in learned:
        theirs = set(normalize_answer(other).split())
        if words and len(words & theirs) / len(words | theirs) >= threshold:
            return True
    return False


def _implication_question(statement: str, passage: str) -> QA | None:
    """A question about the first salient span of a held-out implication that the passage
    itself states (so the passage alone is enough to answer it), replaced as a whole word so
    the question never still contains its answer."""
    passage_norm = f" {normalize_answer(passage)} "
    for span in sorted(salient_spans(statement), key=statement.find):
        if f" {normalize_answer(span)} " not in passage_norm:
            continue
        question = re.sub(rf"(?<!\w){re.escape(span)}(?!\w)", QUESTION_WORDS[span_kind(span)], statement, count=1)
        question = question.rstrip(".!") + "?"
        if question != statement.rstrip(".!") + "?" and f" {normalize_answer(span)} " not in f" {normalize_answer(question)} ":
            return QA(question, statement, span)
    return None


def _at_least(items: list, n: int, option: str, source: str) -> list:
    if len(items) < n:
        raise InputError(f"{option} asks for {n} items but {source} has {len(items)} usable ones; lower {option} to at most {len(items)}")
    return items


def leaked_questions(questions: list[str], training_texts: list[str]) -> list[str]:
    """Scoring questions that appear (normalised) inside any training prompt or answer."""
    return mentioned(questions, training_texts)
