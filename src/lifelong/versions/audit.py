"""An append-only, hash-chained record of who changed a mind and how.

Each line is a JSON record carrying `prev`, the SHA-256 of the line before it (64 zeros for
the first), so removing or editing a line breaks the chain at the next one. The last line has
no successor, so `audit.head` keeps the count and the hash of the last line: truncating the
log or editing its tail is caught too. This detects accidents and casual edits; someone who
can rewrite both files can forge history, so a deployment that must prove its log to others
copies the head hash somewhere else (`lifelong audit --json` prints it).

Appends hold an flock, so two processes learning at once cannot both chain onto the same line.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


_ACTING_AS: ContextVar[str | None] = ContextVar("lifelong_actor", default=None)


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Attribute what this thread or task does to `name` (the server: "api:TENANT" per request)."""
    token = _ACTING_AS.set(name)
    try:
        yield
    finally:
        _ACTING_AS.reset(token)


def actor() -> str:
    """Who is acting: `acting_as`, else the LIFELONG_ACTOR variable, else the OS user."""
    explicit = _ACTING_AS.get() or os.environ.get("LIFELONG_ACTOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Verification:
    lines: int
    legacy: int  # lines written before the chain existed: kept, not verifiable
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.head = path.with_name(path.stem + ".head")

    def append(self, event: str, **details: Any) -> dict[str, Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                count, previous = self._tail(handle)
                record = {"time": time.time(), "actor": actor(), "event": event, **details, "prev": previous}
                line = json.dumps(record, sort_keys=True)
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                self._write_head(count + 1, line_hash(line))
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return record

    def records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def verify(self) -> Verification:
        """Every break in the chain, by line number (1-based), and a tail that differs from the head."""
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()] if self.path.is_file() else []
        problems: list[str] = []
        legacy = 0
        previous, chained = GENESIS, False
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {}
            if "prev" not in record and not chained and record:
                legacy += 1  # written before the chain began; the first chained line hashes it
            elif record.get("prev") != previous:
                problems.append(f"line {number} does not follow line {number - 1}: a line was removed, inserted or edited there"
                                if number > 1 else "line 1 does not start the chain: lines were removed before it")
            chained = chained or "prev" in record
            previous = line_hash(line)
        head = json.loads(self.head.read_text(encoding="utf-8")) if self.head.is_file() else None
        if head is None and chained:
            problems.append(f"{self.head.name} is missing: the end of the log cannot be checked")
        elif head is not None and (head["lines"] != len(lines) or head["last"] != previous):
            problems.append(f"the log ends differently from {self.head.name} ({head['lines']} lines): its last lines were "
                            f"removed or edited")
        return Verification(len(lines), legacy, problems)

    def _tail(self, handle: Any) -> tuple[int, str]:
        """(lines so far, hash of the last): from the head file, so an append does not read a
        long log; from the log itself when there is no head yet (a log older than the chain)."""
        if self.head.is_file():
            head = json.loads(self.head.read_text(encoding="utf-8"))
            return int(head["lines"]), str(head["last"])
        handle.seek(0)
        lines = [line for line in handle.read().splitlines() if line.strip()]
        return len(lines), line_hash(lines[-1]) if lines else GENESIS

    def _write_head(self, lines: int, last: str) -> None:
        temporary = self.head.with_name(self.head.name + ".tmp")
        temporary.write_text(json.dumps({"lines": lines, "last": last}) + "\n", encoding="utf-8")
        os.replace(temporary, self.head)
