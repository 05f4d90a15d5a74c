"""Venue facts the worker needs (exists? default stay?), cached; ClickHouse's ``venues`` is the record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from truyvet.events import Category
from truyvet.schema.db import Database

MISS_TTL = 2.0  # an unknown venue is asked again after this long (it may just have been registered)


class VenueCache:
    def __init__(
        self,
        *,
        connect: Callable[[], Database],
        default_stay_minutes: int,
        category_stay_minutes: dict[Category, int],
    ) -> None:
        self._connect = connect
        self._db: Database | None = None
        self._lock = threading.Lock()
        self._stay: dict[str, int] = {}
        self._missing: dict[str, float] = {}
        self._default = default_stay_minutes * 60
        self._category = {c.value: m * 60 for c, m in category_stay_minutes.items()}

    def _load(self, venue_id: str) -> int | None:
        with self._lock:
            if self._db is None:
                self._db = self._connect()
            rows = self._db.execute(
                "SELECT category, default_stay_minutes FROM venues FINAL WHERE venue_id = %(v)s",
                {"v": venue_id},
            )
        if not rows:
            return None
        category, minutes = rows[0]
        return int(minutes) * 60 if minutes else self._category.get(category, self._default)

    def known(self, venue_id: str) -> bool:
        if venue_id in self._stay:
            return True
        missed = self._missing.get(venue_id)
        if missed is not None and time.monotonic() - missed < MISS_TTL:
            return False
        stay = self._load(venue_id)
        if stay is None:
            self._missing[venue_id] = time.monotonic()
            return False
        self._stay[venue_id] = stay
        self._missing.pop(venue_id, None)
        return True

    def stay_seconds(self, venue_id: str) -> int:
        """Default stay of a known venue (call :meth:`known` first); unknown ones get the global default."""
        return self._stay.get(venue_id, self._default)
