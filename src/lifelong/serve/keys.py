"""API keys: each names one tenant, and only the server decides which tenant a request is.

A key is 32 random bytes shown once, at creation; the server keeps its SHA-256 (a key has
256 bits of entropy, so a fast hash is enough: there is nothing to brute-force) in a small
SQLite file beside the tenants' minds. Revoking marks the key; its hash stays so the audit of
who held it survives.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lifelong.errors import InputError, NotFoundError

KEYS_DB = "keys.db"
KEY_PREFIX = "ll-"
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True)
class KeyRecord:
    key_id: str  # the first characters of the key, enough to tell keys apart in a list
    tenant: str
    created_at: float
    revoked_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_tenant_name(tenant: str) -> str:
    if not TENANT_NAME.fullmatch(tenant):
        raise InputError(f"tenant name {tenant!r} must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit")
    return tenant


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The keys of one server root (`<root>/keys.db`)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / KEYS_DB, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS keys (digest TEXT PRIMARY KEY, key_id TEXT NOT NULL, tenant TEXT NOT NULL, "
                         "created_at REAL NOT NULL, revoked_at REAL)")

    def close(self) -> None:
        self._db.close()

    def create(self, tenant: str) -> str:
        """A new key for `tenant` (the only time the key itself is known)."""
        check_tenant_name(tenant)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._db.execute("INSERT INTO keys (digest, key_id, tenant, created_at) VALUES (?, ?, ?, ?)",
                         (_digest(key), key[:10], tenant, time.time()))
        return key

    def tenant_for(self, key: str) -> str | None:
        """The tenant of a live key, or None (unknown or revoked)."""
        digest = _digest(key)
        row = self._db.execute("SELECT digest, tenant FROM keys WHERE digest = ? AND revoked_at IS NULL", (digest,)).fetchone()
        return row[1] if row and hmac.compare_digest(row[0], digest) else None

    def list(self) -> list[KeyRecord]:
        rows = self._db.execute("SELECT key_id, tenant, created_at, revoked_at FROM keys ORDER BY created_at").fetchall()
        return [KeyRecord(*row) for row in rows]

    def revoke(self, key_or_tenant: str) -> list[KeyRecord]:
        """Revoke one key (the key itself or its id from `keys list`), or every key of a tenant."""
        live = [r for r in self.list() if r.revoked_at is None]
        matches = ([r for r in live if r.key_id == key_or_tenant[:10] and key_or_tenant.startswith(KEY_PREFIX)]
                   or [r for r in live if r.tenant == key_or_tenant])
        if not matches:
            raise NotFoundError(f"no live key or tenant {key_or_tenant!r}; see `lifelong keys list`")
        now = time.time()
        for record in matches:
            self._db.execute("UPDATE keys SET revoked_at = ? WHERE key_id = ? AND tenant = ? AND revoked_at IS NULL",
                             (now, record.key_id, record.tenant))
        return matches
