"""ClickHouse sink for visits: batched, idempotent under redelivery, retried with backoff.

Rows are deterministic for a given input (visit id from the opening scan, version from the
triggering Kafka offset), so writing a batch twice changes nothing that readers see.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

from prometheus_client import Counter, Histogram

from streams.exceptions import SinkBackpressure
from streams.visits import VisitSpan
from truyvet.schema.db import Database, DatabaseError

logger = logging.getLogger(__name__)

VISIT_COLUMNS = ["visit_id", "person_id", "venue_id", "t_in", "t_out", "source_in", "source_out",
                 "version", "deleted", "written_at"]

VISITS_WRITTEN = Counter("truyvet_streams_visit_rows_written_total", "Visit rows written to ClickHouse",
                         ["kind"])
BATCH_SECONDS = Histogram("truyvet_streams_sink_batch_seconds", "ClickHouse insert time per batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CLICKHOUSE_RETRIES = Counter("truyvet_streams_clickhouse_retries_total",
                             "ClickHouse calls that failed and are retried after a pause", ["op"])


def visit_rows(person_id: str, visits: Sequence[VisitSpan], version: int, deleted: bool,
               now: int) -> list[tuple[object, ...]]:
    """``visits`` rows (columns :data:`VISIT_COLUMNS`); times as epoch seconds (clickhouse-driver writes
    ints to DateTime as they are, where a datetime costs a time zone conversion per value)."""
    flag = 1 if deleted else 0
    return [(v.visit_id, person_id, v.venue_id, v.t_in, v.t_out, v.source_in, v.source_out, version, flag, now)
            for v in visits]


class VisitSink:
    """Writes visit rows; :meth:`write` retries with capped exponential backoff until it succeeds.

    :param connect: makes a fresh client (a broken connection is replaced, not reused).
    """

    def __init__(self, *, connect: Callable[[], Database], max_backoff: float) -> None:
        self._connect = connect
        self._db: Database | None = None
        self._max_backoff = max_backoff

    def write_once(self, rows: Sequence[tuple[object, ...]]) -> None:
        """One attempt. :raises SinkBackpressure: ClickHouse did not take the batch."""
        if not rows:
            return
        try:
            if self._db is None:
                self._db = self._connect()
            with BATCH_SECONDS.time():
                self._db.insert("visits", VISIT_COLUMNS, rows)
        except (DatabaseError, OSError, EOFError) as exc:
            if self._db is not None:
                try:
                    self._db.close()
                finally:
                    self._db = None
            raise SinkBackpressure("ClickHouse did not accept the batch", rows=len(rows),
                                   error=str(exc)) from exc
        deleted = sum(1 for r in rows if r[8])
        VISITS_WRITTEN.labels("upsert").inc(len(rows) - deleted)
        VISITS_WRITTEN.labels("delete").inc(deleted)

    def write(
        self, rows: Sequence[tuple[object, ...]], *, should_stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """Write until accepted (True) or ``should_stop`` (False: nothing acknowledged, Kafka redelivers)."""
        delay = 0.2
        while True:
            try:
                self.write_once(rows)
                return True
            except SinkBackpressure as exc:
                CLICKHOUSE_RETRIES.labels("insert").inc()
                logger.warning("%s; pausing %.1fs", exc, delay)
            if should_stop():
                return False
            time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, self._max_backoff)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
