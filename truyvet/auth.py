"""API tokens and roles, shared by the ingest and trace APIs.

A token is shown once (``truyvet token create``) and stored only as its SHA-256 hash; the APIs
look hashes up in ClickHouse and cache the answer briefly, so a revocation takes effect within
``CACHE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from truyvet.schema.db import Database, DatabaseError

STALE_SECONDS = 600.0  # how long a valid token is trusted while ClickHouse cannot be asked
CACHE_SECONDS = 5.0


class Role(StrEnum):
    admin = "admin"
    epidemiologist = "epidemiologist"
    health_center = "health_center"
    registrar = "registrar"
    device = "device"
    viewer = "viewer"


HEALTH_ROLES = frozenset({Role.admin, Role.epidemiologist, Role.health_center})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's role, ward scope (``health_center`` only) and display name."""

    token_prefix: str
    role: Role
    ward_code: str
    name: str

    @property
    def actor(self) -> str:
        return self.name or self.token_prefix


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, *, role: Role, ward_code: str = "", name: str = "") -> str:
    """Store a new token (hashed) and return its clear text, which is never stored."""
    if role == Role.health_center and not ward_code:
        raise ValueError("a health_center token needs --ward")
    token = "tv_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert(
        "api_tokens",
        ["token_hash", "token_prefix", "role", "ward_code", "name", "created_at", "revoked", "updated_at"],
        [(hash_token(token), token[:10], role.value, ward_code, name, now, 0, now)],
    )
    return token


def revoke_token(db: Database, token_prefix: str) -> int:
    """Revoke every token whose shown prefix matches; return how many."""
    rows = db.execute(
        "SELECT token_hash, token_prefix, role, ward_code, name, created_at FROM api_tokens FINAL "
        "WHERE token_prefix = %(p)s AND revoked = 0",
        {"p": token_prefix},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert(
        "api_tokens",
        ["token_hash", "token_prefix", "role", "ward_code", "name", "created_at", "revoked", "updated_at"],
        [(*row, 1, now) for row in rows],
    )
    return len(rows)


class TokenStore:
    """Looks token hashes up in ClickHouse with a short cache (thread-safe)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit and now - hit[0] < CACHE_SECONDS:
                return hit[1]
            try:
                rows = self._db.execute(
                    "SELECT token_prefix, role, ward_code, name, revoked FROM api_tokens FINAL "
                    "WHERE token_hash = %(h)s",
                    {"h": digest},
                )
            except DatabaseError:
                # ClickHouse away: a token known valid a little while ago stays valid (scan intake needs
                # only Kafka); any other answer is a 503 from the caller, never a 500.
                if hit and hit[1] is not None and now - hit[0] < STALE_SECONDS:
                    return hit[1]
                raise
            principal = None
            if rows and not rows[0][4]:
                prefix, role, ward, name, _ = rows[0]
                principal = Principal(prefix, Role(role), ward, name)
            self._cache[digest] = (now, principal)
            return principal
