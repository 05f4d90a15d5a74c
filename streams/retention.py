"""Retention: visits (and health declarations) older than the retention period go by whole daily partitions.

Both visit tables are partitioned by ``toYYYYMMDD(t_in)``; a day is dropped once all of it is older
than the retention period (the partition of the day exactly ``retention_days`` ago is kept). The
worker runs :func:`drop_expired` as a leader-only timer (``STREAMS_RETENTION_CHECK_SECONDS``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from truyvet.schema import connect
from truyvet.schema.cluster import LOCAL
from truyvet.schema.db import Database
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

TABLES = ("visits", "visits_by_venue", "declarations")  # declarations: issue 15, same retention


def expired_partitions(
    db_partitions: list[tuple[str, str]], *, today: datetime, retention_days: int
) -> list[tuple[str, str]]:
    cutoff = int((today - timedelta(days=retention_days)).strftime("%Y%m%d"))
    return [(table, p) for table, p in db_partitions if p.isdigit() and int(p) < cutoff]


def drop_expired_in(db: Database, *, retention_days: int, today: datetime | None = None,
                    cluster: str | None = None) -> list[tuple[str, str]]:
    """Drop the expired daily partitions of the visit tables in ``db``; return (table, partition) dropped.

    :param cluster: on the cluster profile, the partitions are those of the replicated local tables on
        every server (``cluster()`` over ``system.parts``), dropped ``ON CLUSTER`` (truyvet/schema/cluster.py).
    """
    suffix = LOCAL if cluster else ""
    parts = f"cluster('{cluster}', system, parts)" if cluster else "system.parts"
    rows = db.execute(
        f"SELECT DISTINCT table, partition FROM {parts} WHERE database = %(db)s AND active "  # noqa: S608
        "AND table IN %(tables)s",
        {"db": db.name, "tables": tuple(t + suffix for t in TABLES)},
    )
    found = sorted((str(t).removesuffix(suffix), str(p).strip("'")) for t, p in rows)
    dropped = expired_partitions(found, today=today or datetime.now(UTC), retention_days=retention_days)
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    for table, partition in dropped:
        db.execute(f"ALTER TABLE {db.name}.{table}{suffix}{on_cluster} DROP PARTITION {int(partition)}")
        logger.info("retention: dropped %s partition %s", table, partition)
    return dropped


def drop_expired(settings: CommonSettings, *, today: datetime | None = None) -> list[tuple[str, str]]:
    """As the retention account: the one service account allowed DDL, held to the data database (it
    cannot reach the audit log's database; truyvet/stack/clickhouse_users.py)."""
    db = connect(settings.as_account(clickhouse="retention"))
    try:
        return drop_expired_in(db, retention_days=settings.retention_days, today=today,
                               cluster=settings.clickhouse_cluster if settings.clustered else None)
    finally:
        db.close()
