"""Retention: visits older than the retention period go by whole daily partitions (DROP PARTITION)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from truyvet.schema import connect
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

TABLES = ("visits", "visits_by_venue")


def expired_partitions(
    db_partitions: list[tuple[str, str]], *, today: datetime, retention_days: int
) -> list[tuple[str, str]]:
    cutoff = int((today - timedelta(days=retention_days)).strftime("%Y%m%d"))
    return [(table, p) for table, p in db_partitions if p.isdigit() and int(p) < cutoff]


def drop_expired(settings: CommonSettings, *, today: datetime | None = None) -> list[tuple[str, str]]:
    db = connect(settings)
    try:
        rows = db.execute(
            "SELECT DISTINCT table, partition FROM system.parts WHERE database = %(db)s AND active "
            "AND table IN %(tables)s",
            {"db": settings.clickhouse_database, "tables": TABLES},
        )
        dropped = expired_partitions([(str(t), str(p)) for t, p in rows], today=today or datetime.now(UTC),
                                     retention_days=settings.retention_days)
        for table, partition in dropped:
            db.execute(f"ALTER TABLE {table} DROP PARTITION {int(partition)}")
            logger.info("retention: dropped %s partition %s", table, partition)
        return dropped
    finally:
        db.close()
