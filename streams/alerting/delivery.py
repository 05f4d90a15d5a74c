"""Webhook delivery pieces the dispatcher is made of: signatures, backoff, offsets, webhooks, state.

Signature (what a ward's receiver checks): ``X-Truyvet-Timestamp: <unix seconds>`` and
``X-Truyvet-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``. The timestamp is
inside the MAC, so a receiver that refuses timestamps older than a few minutes (:func:`verify`
does, 300 s by default) cannot be fed a replayed request; ``Idempotency-Key: <alert_id>`` lets it
drop a redelivery (an alert may arrive twice after a dispatcher crash; it is never lost).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from streams.alerting.webhooks import Webhook, webhooks
from truyvet.events import Alert
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Truyvet-Signature"
TIMESTAMP_HEADER = "X-Truyvet-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

ALERT_COLUMNS = [
    "alert_id",
    "case_id",
    "person_id",
    "generation",
    "ward_code",
    "venue_id",
    "created_at",
    "status",
    "attempts",
    "last_error",
    "delivered_at",
    "updated_at",
    "version",
    "kind",  # issue 15: contact | declaration
]
EPOCH = datetime.fromtimestamp(0, UTC)


class Status:
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    FINAL = frozenset({"delivered", "dead_lettered"})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def signed_headers(
    secret: str, body: bytes, idempotency_key: str, *, now: float | None = None
) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
        IDEMPOTENCY_HEADER: idempotency_key,
    }


def verify(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = 300,
) -> bool:
    """What a receiver does: a valid MAC over this body and timestamp, and a fresh timestamp."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def backoff(attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry ``attempt`` (1-based): exponential, capped, with jitter in [50 %, 100 %]."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + rng() / 2)


class OffsetTracker:
    """Which offsets may be committed: per partition, everything below the oldest unfinished one."""

    def __init__(self) -> None:
        self._pending: dict[object, set[int]] = {}
        self._next: dict[object, int] = {}  # one past the highest offset seen
        self._committed: dict[object, int] = {}

    def add(self, tp: object, offset: int) -> None:
        self._pending.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, tp: object, offset: int) -> None:
        self._pending.get(tp, set()).discard(offset)

    def in_flight(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def to_commit(self) -> dict[object, int]:
        """Partitions whose committable offset moved since the last call, with that offset."""
        out = {}
        for tp, nxt in self._next.items():
            pending = self._pending.get(tp)
            point = min(pending) if pending else nxt
            if point > self._committed.get(tp, -1):
                out[tp] = point
        return out

    def committed(self, points: dict[object, int]) -> None:
        self._committed.update(points)

    def forget(self, keep: Iterable[object]) -> None:
        """Drop partitions no longer assigned (their unfinished alerts are redelivered elsewhere)."""
        kept = set(keep)
        for table in (self._pending, self._next, self._committed):
            for tp in [t for t in table if t not in kept]:
                del table[tp]


class WebhookDirectory:
    """Ward -> webhook, read from ClickHouse at most every ``ttl`` seconds (thread-safe)."""

    def __init__(self, connect: Callable[[], Database], *, ttl: float) -> None:
        self._connect = connect
        self._db: Database | None = None
        self._ttl = ttl
        self._lock = threading.Lock()
        self._loaded = -1e18
        self._hooks: dict[str, Webhook] = {}

    def fresh(self) -> bool:
        return time.monotonic() - self._loaded <= self._ttl

    def cached(self, ward_code: str) -> Webhook | None:
        return self._hooks.get(ward_code)

    def get(self, ward_code: str, *, miss_after: float = 0.25) -> Webhook | None:
        """The ward's webhook; the directory is read again when older than the TTL, or, for a ward it does
        not know, older than ``miss_after`` seconds (a webhook just set is used at the next attempt, not up
        to a TTL later, also while other wards' alerts keep the directory warm)."""
        with self._lock:
            age = time.monotonic() - self._loaded
            if age > self._ttl or (ward_code not in self._hooks and age > miss_after):
                try:
                    if self._db is None:
                        self._db = self._connect()
                    self._hooks = webhooks(self._db)
                    self._loaded = time.monotonic()
                except Exception:
                    logger.exception("could not read ward webhooks; using the last known ones")
                    if self._db is not None:
                        self._db.close()
                        self._db = None
            return self._hooks.get(ward_code)

    def close(self) -> None:
        """Its database connection closed (a later ``get`` opens a new one)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def alert_row(
    alert: Alert,
    *,
    status: str,
    attempts: int,
    error: str = "",
    delivered_at: datetime | None = None,
    version: int,
) -> tuple[object, ...]:
    now = datetime.now(UTC).replace(microsecond=0)
    return (
        alert.alert_id,
        alert.case_id,
        alert.person_id,
        alert.generation,
        alert.ward_code,
        alert.venue_id,
        alert.created_at,
        status,
        attempts,
        error[:500],
        delivered_at or EPOCH,
        now,
        version,
        alert.kind,
    )


def known_states(db: Database, alert_ids: Iterable[str]) -> dict[str, str]:
    """alert_id -> recorded status, for those of ``alert_ids`` already recorded."""
    ids = tuple(sorted(set(alert_ids)))
    if not ids:
        return {}
    rows = db.execute("SELECT alert_id, status FROM alerts FINAL WHERE alert_id IN %(ids)s", {"ids": ids})
    return {str(a): str(s) for a, s in rows}
