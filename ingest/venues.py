"""Venue registry: ClickHouse is the record, the compacted ``venues`` topic feeds the stream workers."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from truyvet.events import Venue
from truyvet.schema.db import Database

logger = logging.getLogger(__name__)

COLUMNS = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
           "valid_from", "valid_until", "created_at", "updated_at"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MISS_TTL = 2.0  # an unknown venue id is asked again after this long (a batch may name it 500 times)


def new_venue_id() -> str:
    return "v" + secrets.token_hex(8)


def venue_row(venue: Venue) -> tuple[object, ...]:
    return (venue.venue_id, venue.name, venue.category.value, venue.ward_code, venue.address, venue.phone,
            venue.default_stay_minutes or 0, venue.valid_from or EPOCH, venue.valid_until or EPOCH,
            venue.created_at, datetime.now(UTC).replace(microsecond=0))


def venue_from_row(row: tuple[Any, ...]) -> Venue:
    (venue_id, name, category, ward, address, phone, stay, valid_from, valid_until, created_at) = row[:10]
    return Venue(venue_id=venue_id, name=name, category=category, ward_code=ward, address=address,
                 phone=phone,
                 default_stay_minutes=stay or None,
                 valid_from=None if valid_from == EPOCH else valid_from,
                 valid_until=None if valid_until == EPOCH else valid_until, created_at=created_at)


class VenueStore:
    """Reads venues through an in-process cache; a miss asks ClickHouse (a venue is never deleted)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._cache: dict[str, Venue] = {}
        self._missing: dict[str, float] = {}

    def save(self, venue: Venue) -> None:
        with self._lock:
            self._db.insert("venues", COLUMNS, [venue_row(venue)])
            self._cache[venue.venue_id] = venue

    def get(self, venue_id: str) -> Venue | None:
        venue = self._cache.get(venue_id)
        if venue is not None:
            return venue
        missed = self._missing.get(venue_id)
        if missed is not None and time.monotonic() - missed < MISS_TTL:
            return None
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(COLUMNS[:10])} FROM venues FINAL WHERE venue_id = %(v)s", {"v": venue_id}
            )
            if not rows:
                if len(self._missing) > 100_000:
                    self._missing.clear()
                self._missing[venue_id] = time.monotonic()
                return None
            self._missing.pop(venue_id, None)
            venue = venue_from_row(rows[0])
            self._cache[venue_id] = venue
            return venue

    def save_qr(self, venue_id: str, payload: str, key_id: str) -> None:
        """Record the QR text issued for a venue (what its printed poster carries)."""
        with self._lock:
            self._db.insert("venue_qr_codes", ["venue_id", "qr_payload", "key_id", "issued_at"],
                            [(venue_id, payload, key_id, datetime.now(UTC).replace(microsecond=0))])

    def qr_payload(self, venue_id: str) -> str | None:
        with self._lock:
            rows = self._db.execute(
                "SELECT qr_payload FROM venue_qr_codes FINAL WHERE venue_id = %(v)s", {"v": venue_id}
            )
        return str(rows[0][0]) if rows else None

    def ward_name(self, ward_code: str) -> str:
        with self._lock:
            rows = self._db.execute("SELECT name FROM units FINAL WHERE code = %(c)s", {"c": ward_code})
        return str(rows[0][0]) if rows else ward_code

    def ward_exists(self, ward_code: str) -> bool:
        with self._lock:
            rows = self._db.execute(
                "SELECT count() FROM units FINAL WHERE code = %(c)s AND level IN ('ward', 'commune')",
                {"c": ward_code},
            )
        return bool(rows and rows[0][0])


def venue_message(venue: Venue) -> bytes:
    return orjson.dumps(venue.model_dump(mode="json"))
