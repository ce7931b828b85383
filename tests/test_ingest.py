"""Parsing and chunking: every format, and every bad input named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifelong.errors import InputError
from lifelong.memory.ingest import chunk_text, parse_document, parse_path


def test_fact_list_gives_one_chunk_per_line() -> None:
    text = "The sky is green on Zorb.\nZorb has three moons.\nIts capital is Plix."
    assert chunk_text(text) == ["The sky is green on Zorb.", "Zorb has three moons.", "Its capital is Plix."]


def test_wrapped_paragraph_stays_one_chunk() -> None:
    text = "Zorb is a planet that\nhas three moons and a\ncapital called Plix."
    assert chunk_text(text) == ["Zorb is a planet that has three moons and a capital called Plix."]


def test_long_document_is_packed_by_sentences_under_the_word_limit() -> None:
    sentence = "Alpha beta gamma delta epsilon zeta eta theta iota kappa."  # 10 words
    chunks = chunk_text(" ".join([sentence] * 20), max_words=35)
    assert len(chunks) == 7
    assert all(len(c.split()) <= 35 for c in chunks)
    assert all(c.endswith(".") for c in chunks)


def test_markdown_headings_prefix_their_sections() -> None:
    text = "# Zorb\n\nZorb has three moons.\n\n## Capital\n\nIts capital is Plix."
    assert chunk_text(text) == ["Zorb: Zorb has three moons.", "Zorb > Capital: Its capital is Plix."]


def test_a_sentence_longer_than_the_limit_is_split_on_words() -> None:
    chunks = chunk_text(" ".join(f"w{i}" for i in range(25)), max_words=10)
    assert [len(c.split()) for c in chunks] == [10, 10, 5]


def test_jsonl_text_and_question_answer_records(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    path.write_text('{"text": "Zorb has three moons."}\n\n{"question": "What is Zorb\'s capital?", "answer": "Plix."}\n')
    memories = parse_path(path, None, "user", "default")
    assert [m.kind for m in memories] == ["fact", "qa"]
    assert memories[1].text == "What is Zorb's capital? Plix."
    assert memories[1].key == "what is zorb s capital"
    assert memories[0].source == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "ok"}\n{"text": broken}\n', "line 2: not valid JSON"),
        ('{"text": "ok"}\n["a list"]\n', "line 2: expected a JSON object"),
        ('{"question": "only a question"}\n', "line 1: needs a non-empty 'text' field"),
        ('{"text": "ok", "kind": "poem"}\n', "line 1: 'kind' must be one of"),
    ],
)
def test_bad_jsonl_names_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        parse_path(path, None, "user", "default")


def test_empty_binary_non_utf8_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "blob.txt").write_bytes(b"\x89PNG\x00\x00\x01")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "image.png").write_bytes(b"x")
    cases = {
        "empty.txt": "is empty",
        "blob.txt": "looks binary",
        "latin1.txt": "not UTF-8",
        "image.png": "unsupported file type",
        "missing.txt": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message):
            parse_path(tmp_path / name, None, "user", "default")
    with pytest.raises(InputError, match="is a directory"):
        parse_path(tmp_path, None, "user", "default")


def test_stdin_is_sniffed_as_jsonl_or_text() -> None:
    assert parse_document('{"text": "A fact."}', "stdin", "stdin", "user", "default")[0].kind == "fact"
    assert parse_document("Just some prose.", "stdin", "stdin", "user", "default")[0].kind == "fact"  # as `learn "..."`
    prose = parse_document("First paragraph, quite short.\n\nSecond paragraph.", "stdin", "stdin", "user", "default")
    assert [m.kind for m in prose] == ["document", "document"]
