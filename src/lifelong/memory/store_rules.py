"""Rules both memory stores (SQLite, PostgreSQL) apply identically, whatever their SQL: how far
a chain of supersessions runs, when an explicit --supersedes is refused, which current memories
with the same key a new one closes, and which filters a listing takes. One place, so the two
backends cannot drift apart; the store tests run on both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lifelong.errors import InputError, NotFoundError
from lifelong.memory.records import TRUST_LEVELS

# (valid_to, superseded_by) of a memory, or None when no memory has that id
Validity = Callable[[int], tuple[float | None, int | None] | None]
MAX_ID = 2**63 - 1  # ids are positive 64-bit integers in both stores


def storable(memory_id: int) -> bool:
    """Whether a memory could have this id: outside 1..2^63-1 none can, and the databases
    would reject the number itself (an overflow, not a "not found")."""
    return 0 < memory_id <= MAX_ID


def succession(validity: Validity, memory_id: int) -> list[int]:
    """The chain from a memory through each one that superseded it; the last is current, or
    the chain ends at a replacement that was since forgotten."""
    chain = [memory_id]
    while True:
        row = validity(chain[-1])
        if row is None or row[0] is None or row[1] is None or row[1] in chain:
            return chain
        chain.append(int(row[1]))


def check_supersedable(validity: Validity, target: int) -> None:
    """An explicit --supersedes must name a current memory: superseding an old one would close
    nothing and leave two facts current, so the user is pointed at the one holding its place."""
    if not storable(target) or validity(target) is None:
        raise NotFoundError(f"--supersedes {target}: no memory with that id; see `lifelong memories`")
    chain = succession(validity, target)
    last = validity(chain[-1])
    if last is not None and last[0] is None:
        if len(chain) == 1:
            return
        path = " then ".join(f"#{i}" for i in chain[1:])
        raise InputError(f"--supersedes {target}: #{target} was already superseded by {path}, which holds its place now; "
                         f"pass --supersedes {chain[-1]} instead")
    raise InputError(f"--supersedes {target}: #{target} is no longer current and what replaced it was forgotten; "
                     f"learn the new fact without --supersedes")


def split_by_trust(same_key: Sequence[tuple[int, str]], trust: str) -> tuple[list[int], list[int]]:
    """Current memories with the new memory's key: those of equal or lower trust it supersedes,
    and those of higher trust it only conflicts with (they stay current)."""
    rank = TRUST_LEVELS.index(trust)
    superseded = [int(i) for i, t in same_key if TRUST_LEVELS.index(t) <= rank]
    conflicts = [int(i) for i, t in same_key if TRUST_LEVELS.index(t) > rank]
    return superseded, conflicts


def listing_filter(mark: str, like: str, namespace: str | None, source: str | None, include_superseded: bool,
                   contains: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (with `mark` as the parameter placeholder, `like` the case-insensitive
    LIKE operator) and its parameters; `contains` matches literally, % and _ included."""
    clauses, params = [], []
    if namespace is not None:
        clauses.append(f"namespace = {mark}")
        params.append(namespace)
    if source is not None:
        clauses.append(f"source = {mark}")
        params.append(source)
    if not include_superseded:
        clauses.append("valid_to IS NULL")
    if contains:
        clauses.append(f"text {like} {mark} ESCAPE '\\'")
        params.append("%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
