"""The index terms SQLite's FTS5 makes of a text, for stores that index text elsewhere.

Keyword search must rank alike on both backends: the PostgreSQL store used PostgreSQL's
english configuration (Snowball stemmer, a stop-word list) and found the right TOFU memory in
the top 5 for 2 questions in 100 fewer than SQLite's FTS5 (porter stemmer, unicode61
tokenizer, no stop words). Instead of re-implementing FTS5's tokenizer, this asks SQLite
itself, which every Python ships: each text is inserted into an in-memory FTS5 table inside a
transaction that is rolled back, and its terms and positions are read from `fts5vocab`. The
PostgreSQL store then indexes exactly the terms, counts and lengths memory.db indexes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

FTS5_TOKENIZER = "porter unicode61"  # memory.db's memories_fts and this module must agree
MAX_LEXEME_BYTES = 2046  # PostgreSQL refuses longer tsvector lexemes; such tokens are not words


class Fts5Terms:
    """Tokenises texts with FTS5's tokenizer; one in-memory database per instance, thread-safe."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute(f"CREATE VIRTUAL TABLE texts USING fts5 (text, tokenize='{FTS5_TOKENIZER}')")
        self._db.execute("CREATE VIRTUAL TABLE vocabulary USING fts5vocab (texts, instance)")
        self._lock = threading.Lock()

    def terms(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's terms in order (repeats kept): what FTS5 would index for it."""
        if not texts:
            return []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT INTO texts (rowid, text) VALUES (?, ?)", enumerate(texts, start=1))
                rows = self._db.execute("SELECT doc, term FROM vocabulary ORDER BY doc, offset").fetchall()
            finally:
                self._db.execute("ROLLBACK")
        out: list[list[str]] = [[] for _ in texts]
        for doc, term in rows:
            out[doc - 1].append(term)
        return out


_shared: Fts5Terms | None = None
_shared_lock = threading.Lock()


def fts5_terms(texts: Sequence[str]) -> list[list[str]]:
    """FTS5's terms of each text, through one tokenizer shared by the process (made on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Fts5Terms()
    return _shared.terms(texts)


def tsvector_text(terms: Sequence[str]) -> str:
    """A tsvector literal holding these terms at their 1-based positions, as FTS5 counts them.

    PostgreSQL caps positions at 16,383 and keeps 256 per lexeme, beyond any real memory."""
    positions: dict[str, list[int]] = {}
    for position, term in enumerate(terms, start=1):
        if len(term.encode()) <= MAX_LEXEME_BYTES:
            positions.setdefault(term, []).append(min(position, 16383))
    return " ".join(f"'{_quoted(term)}':{','.join(map(str, spots[:256]))}" for term, spots in positions.items())


def tsquery_text(words: Sequence[Sequence[str]], require_all: bool = False) -> str:
    """A tsquery matching as FTS5 matches `"w1" OR "w2"` (AND with require_all): each word is
    its terms, and a word FTS5 splits into several terms (foo_bar) is a phrase."""
    phrases = [" <-> ".join(f"'{_quoted(t)}'" for t in terms) for terms in words if terms]
    return (" & " if require_all else " | ").join(f"({p})" for p in phrases)


def _quoted(term: str) -> str:
    """unicode61 terms are letters and digits; escaping anyway keeps a literal well formed."""
    return term.replace("\\", "\\\\").replace("'", "''")
