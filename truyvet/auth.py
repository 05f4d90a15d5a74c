"""API tokens and roles, shared by the ingest and trace APIs.

A token is shown once (``truyvet token create``) and stored only as its SHA-256 hash; the APIs
look hashes up in ClickHouse and cache the answer briefly, so a revocation takes effect within
``CACHE_SECONDS`` (tests/integration/security/test_tokens.py). Every token expires: after
``DEFAULT_TOKEN_DAYS`` unless created with another lifetime (``--expires``), at most ``MAX_TOKEN_DAYS``.
The cache is bounded (``CACHE_SIZE`` entries, least recently used dropped first), and an unknown token is
remembered only as long as a known one (``CACHE_SECONDS``), so guessing tokens cannot grow it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from truyvet.schema.db import Database, DatabaseError

STALE_SECONDS = 600.0  # how long a valid token is trusted while ClickHouse cannot be asked
CACHE_SECONDS = 5.0  # the bound on how long a revoked token still works
CACHE_SIZE = 10_000
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 366
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ["token_hash", "token_prefix", "role", "ward_code", "name", "created_at", "revoked", "updated_at"]


class Role(StrEnum):
    admin = "admin"
    epidemiologist = "epidemiologist"
    health_center = "health_center"
    registrar = "registrar"
    device = "device"
    viewer = "viewer"
    # A citizen of the app: its own secret (``POST /v1/citizens``), never an API token; only ingest takes it,
    # for the citizen's own health declarations (docs/api.md, "Health declarations").
    citizen = "citizen"


TOKEN_ROLES = tuple(r for r in Role if r != Role.citizen)  # what ``truyvet token create`` may issue
CITIZEN_SECRET_PREFIX = "tvc_"  # noqa: S105 - the shape of a citizen secret, not one


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


def parse_lifetime(text: str) -> timedelta:
    """``90d``, ``12h`` or ``30m`` (at most ``MAX_TOKEN_DAYS``); ValueError with the reason otherwise."""
    units = {"d": 86400, "h": 3600, "m": 60}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.isascii() or not number.isdigit() or int(number) < 1:
        raise ValueError(f"--expires {text!r}: give a number of days, hours or minutes, e.g. 30d, 12h, 45m")
    lifetime = timedelta(seconds=int(number) * units[unit])
    if lifetime > timedelta(days=MAX_TOKEN_DAYS):
        raise ValueError(f"--expires {text!r}: at most {MAX_TOKEN_DAYS} days")
    return lifetime


def create_token(db: Database, *, role: Role, ward_code: str = "", name: str = "",
                 lifetime: timedelta = timedelta(days=DEFAULT_TOKEN_DAYS)) -> str:
    """Store a new token (hashed) that works for ``lifetime``; return its clear text, which is never stored."""
    if role not in TOKEN_ROLES:
        raise ValueError(f"no API token has role {role.value}: a citizen registers with POST /v1/citizens")
    if role == Role.health_center and not ward_code:
        raise ValueError("a health_center token needs --ward")
    if not timedelta(0) < lifetime <= timedelta(days=MAX_TOKEN_DAYS):
        raise ValueError(f"a token's lifetime must be positive and at most {MAX_TOKEN_DAYS} days")
    token = "tv_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC).replace(microsecond=0)
    digest = hash_token(token)
    # The expiry first: a token is never usable without it.
    db.insert("api_token_expiry", ["token_hash", "expires_at", "updated_at"], [(digest, now + lifetime, now)])
    db.insert("api_tokens", _COLUMNS, [(digest, token[:10], role.value, ward_code, name, now, 0, now)])
    return token


def revoke_token(db: Database, token_prefix: str) -> int:
    """Revoke every token whose shown prefix matches; return how many."""
    rows = db.execute(
        "SELECT token_hash, token_prefix, role, ward_code, name, created_at FROM api_tokens FINAL "
        "WHERE token_prefix = %(p)s AND revoked = 0",
        {"p": token_prefix},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("api_tokens", _COLUMNS, [(*row, 1, now) for row in rows])
    return len(rows)


_LOOKUP = (
    "SELECT token_prefix, role, ward_code, name, revoked, created_at, expires_at FROM "
    "(SELECT token_hash, token_prefix, role, ward_code, name, revoked, created_at FROM api_tokens FINAL "
    "WHERE token_hash = %(h)s) ANY LEFT JOIN "
    "(SELECT token_hash, expires_at FROM api_token_expiry FINAL WHERE token_hash = %(h)s) USING token_hash"
)


def _expiry(created_at: datetime, expires_at: datetime) -> float:
    """Epoch seconds after which the token is refused (no expiry row: the default lifetime)."""
    if expires_at.replace(tzinfo=UTC) <= _EPOCH:
        expires_at = created_at.replace(tzinfo=UTC) + timedelta(days=DEFAULT_TOKEN_DAYS)
    return expires_at.replace(tzinfo=UTC).timestamp()


def citizen_of(db: Database, secret: str) -> str | None:
    """The person id of the citizen whose secret this is; None for an unknown or removed one."""
    rows = db.execute("SELECT person_id, deleted FROM citizens FINAL WHERE secret_hash = %(h)s",
                      {"h": hash_token(secret)})
    return str(rows[0][0]) if rows and not rows[0][1] else None


class TokenStore:
    """Looks token hashes up in ClickHouse with a short, bounded cache (thread-safe).

    :param citizens: also take citizens' secrets (``tvc_...``), as principals of role ``citizen`` whose
        ``token_prefix`` and name are their person id (ingest: a citizen's own health declarations).
    """

    def __init__(self, db: Database, *, size: int = CACHE_SIZE, citizens: bool = False) -> None:
        self._db = db
        self._citizens = citizens
        self._lock = threading.Lock()
        self._size = size
        # digest -> (looked up at, principal or None, expires at epoch seconds); least recently used first.
        self._cache: OrderedDict[str, tuple[float, Principal | None, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def lookup(self, token: str) -> Principal | None:
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
            if hit and now - hit[0] < CACHE_SECONDS:
                return hit[1] if time.time() < hit[2] else None
            try:
                if self._citizens and token.startswith(CITIZEN_SECRET_PREFIX):
                    person = citizen_of(self._db, token)
                    rows = [(person, Role.citizen.value, "", person, 0, None, None)] if person else []
                else:
                    rows = self._db.execute(_LOOKUP, {"h": digest})
            except DatabaseError:
                # ClickHouse away: a token known valid a little while ago stays valid (scan intake needs
                # only Kafka); any other answer is a 503 from the caller, never a 500.
                if hit and hit[1] is not None and now - hit[0] < STALE_SECONDS and time.time() < hit[2]:
                    return hit[1]
                raise
            principal, expires = None, 0.0
            if rows and not rows[0][4]:
                prefix, role, ward, name, _, created_at, expires_at = rows[0]
                # a citizen's secret lasts as long as its registration (retention of ``citizens``)
                expires = math.inf if created_at is None else _expiry(created_at, expires_at)
                if time.time() < expires:
                    principal = Principal(prefix, Role(role), ward, name)
            self._cache[digest] = (now, principal, expires)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
            return principal
