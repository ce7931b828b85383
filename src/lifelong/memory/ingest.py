"""Turn files, stdin and strings into validated memories, before anything is written.

Formats: plain text and Markdown (chunked on paragraphs and sentences, Markdown headings kept
as context), and JSON Lines with a `text` field or `question` + `answer` fields. Every problem
is reported with the file, the line and the fix; a file with one bad line stores nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lifelong.errors import InputError
from lifelong.memory.records import KINDS, TRUST_LEVELS, NewMemory

MAX_CHUNK_WORDS = 80
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".jsonl", ".ndjson", ""}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def validate_labels(source: str, trust: str, namespace: str) -> None:
    if trust not in TRUST_LEVELS:
        raise InputError(f"--trust '{trust}' is not a trust level; use one of: {', '.join(TRUST_LEVELS)}")
    if not source.strip():
        raise InputError("--source is empty; name where these memories came from (a file, a URL, a person)")
    if not namespace.strip() or not re.fullmatch(r"[\w.\-/]+", namespace):
        raise InputError(f"--namespace '{namespace}' must be letters, digits, '.', '-', '_' or '/'")


def normalise_key(text: str) -> str:
    """What makes two QA pairs about the same thing: the question, case and punctuation aside."""
    return " ".join(re.findall(r"\w+", text.lower()))


def read_text_file(path: Path) -> str:
    """Read a file as UTF-8 text, refusing binary and empty files with an actionable message."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory; pass the files inside it (e.g. {path}/*.md)")
    raw = path.read_bytes()
    return decode_text(raw, str(path))


def decode_text(raw: bytes, label: str) -> str:
    if b"\x00" in raw[:8192]:
        raise InputError(f"{label} looks binary (it contains NUL bytes); lifelong learns UTF-8 .txt, .md and .jsonl files")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label} is not UTF-8 text (byte {exc.start}); convert it to UTF-8 (e.g. iconv -t utf-8)") from exc
    if not text.strip():
        raise InputError(f"{label} is empty; nothing to learn")
    return text


def chunk_text(text: str, max_words: int = MAX_CHUNK_WORDS) -> list[str]:
    """Split into retrieval-sized chunks: paragraphs, then sentences packed up to max_words.

    A paragraph whose lines each end a sentence (a list of facts) gives one chunk per line;
    Markdown headings are prefixed to their section's chunks so a chunk keeps its topic.
    """
    chunks: list[str] = []
    heading: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in paragraph.strip().splitlines() if ln.strip()]
        body: list[str] = []
        for line in lines:
            match = _HEADING.match(line)
            if match:
                level = len(match.group(1))
                heading = heading[: level - 1] + [match.group(2).strip()]
            else:
                body.append(line)
        if not body:
            continue
        units = body if len(body) > 1 and all(ln[-1] in ".!?\"'" for ln in body) else [" ".join(body)]
        prefix = " > ".join(heading)
        for unit in units:
            for chunk in _pack_sentences(unit, max_words):
                chunks.append(f"{prefix}: {chunk}" if prefix else chunk)
    return chunks


def _pack_sentences(text: str, max_words: int) -> list[str]:
    packed: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        while len(words) > max_words:  # one very long sentence: hard split on words
            if current:
                packed.append(" ".join(current))
                current, count = [], 0
            packed.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if count + len(words) > max_words and current:
            packed.append(" ".join(current))
            current, count = [], 0
        if words:
            current.append(" ".join(words))
            count += len(words)
    if current:
        packed.append(" ".join(current))
    return packed


def parse_jsonl(text: str, label: str, source: str, trust: str, namespace: str) -> list[NewMemory]:
    memories = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{label} line {number}: not valid JSON ({exc.msg}); fix or remove that line") from exc
        if not isinstance(record, dict):
            raise InputError(f"{label} line {number}: expected a JSON object like {{\"text\": \"...\"}}")
        memories.append(_record_to_memory(record, f"{label} line {number}", source, trust, namespace))
    if not memories:
        raise InputError(f"{label} has no records; nothing to learn")
    return memories


def _record_to_memory(record: dict, where: str, source: str, trust: str, namespace: str) -> NewMemory:
    question, answer, text = record.get("question"), record.get("answer"), record.get("text")
    kind = record.get("kind")
    if kind is not None and kind not in KINDS:
        raise InputError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
    if isinstance(text, str) and text.strip():
        return NewMemory(text.strip(), source, trust, namespace, kind or "fact", record.get("key"))
    if isinstance(question, str) and isinstance(answer, str) and question.strip() and answer.strip():
        return NewMemory(
            f"{question.strip()} {answer.strip()}", source, trust, namespace, kind or "qa", normalise_key(question)
        )
    raise InputError(f"{where}: needs a non-empty 'text' field, or non-empty 'question' and 'answer' fields")


def looks_like_jsonl(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return bool(lines) and all(ln.lstrip().startswith("{") for ln in lines)


def parse_document(text: str, label: str, source: str, trust: str, namespace: str, jsonl: bool | None = None) -> list[NewMemory]:
    """Parse one document's text; JSON Lines by suffix or, for stdin, by content."""
    if jsonl if jsonl is not None else looks_like_jsonl(text):
        return parse_jsonl(text, label, source, trust, namespace)
    chunks = chunk_text(text)
    kind = chunks_kind(chunks)
    return [NewMemory(chunk, source, trust, namespace, kind) for chunk in chunks]


def chunks_kind(chunks: list[str]) -> str:
    """What a learned text is, from the chunks it made: one chunk is a note ("fact"), more a
    document. One rule for every way in (`lifelong learn "..."`, stdin, files), because sleep
    recites documents' chunks and not notes: the same line must train the same either way."""
    return "fact" if len(chunks) == 1 else "document"


def parse_path(path: Path, source: str | None, trust: str, namespace: str) -> list[NewMemory]:
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise InputError(f"{path}: unsupported file type '{path.suffix}'; lifelong learns .txt, .md and .jsonl files")
    text = read_text_file(path)
    jsonl = path.suffix.lower() in {".jsonl", ".ndjson"}
    return parse_document(text, str(path), source or str(path), trust, namespace, jsonl=jsonl)
