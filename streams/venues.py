"""Venue facts the worker needs (exists? default stay?), cached; ClickHouse's ``venues`` is the record."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable

from streams.sink import CLICKHOUSE_RETRIES
from truyvet.events import Category
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

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

    def prefetch(self, venue_ids: Iterable[str], *, should_stop: Callable[[], bool] = lambda: False,
                 max_backoff: float = 30.0) -> bool:
        """Look up, in one query, the venues of a batch not cached yet; retry while ClickHouse is away.

        An unreachable ClickHouse must not turn into "unknown venue" dead letters: this waits (capped
        exponential backoff) until it answers. False if asked to stop first.
        """
        now = time.monotonic()
        wanted = tuple(sorted(v for v in set(venue_ids) if v not in self._stay
                              and not (v in self._missing and now - self._missing[v] < MISS_TTL)))
        if not wanted:
            return True
        delay = 0.2
        while True:
            try:
                with self._lock:
                    if self._db is None:
                        self._db = self._connect()
                    rows = self._db.execute(
                        "SELECT venue_id, category, default_stay_minutes FROM venues FINAL "
                        "WHERE venue_id IN %(ids)s", {"ids": wanted})
                break
            except (DatabaseError, OSError, EOFError) as exc:
                self._reset()
                CLICKHOUSE_RETRIES.labels("venues").inc()
                logger.warning("venue lookup failed (%s); retrying in %.1fs", exc, delay)
            if should_stop():
                return False
            time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter
            delay = min(delay * 2, max_backoff)
        found = {str(v): self._stay_of(str(c), int(m)) for v, c, m in rows}
        self._stay.update(found)
        stamp = time.monotonic()
        for venue_id in wanted:
            if venue_id in found:
                self._missing.pop(venue_id, None)
            else:
                self._missing[venue_id] = stamp
        return True

    def _stay_of(self, category: str, minutes: int) -> int:
        return minutes * 60 if minutes else self._category.get(category, self._default)

    def _reset(self) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                except Exception:  # noqa: BLE001, S110 - a broken client is dropped either way
                    pass
                self._db = None

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
