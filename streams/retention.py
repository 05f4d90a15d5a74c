"""Retention: visits older than the retention period go by whole daily partitions (DROP PARTITION).

Both visit tables are partitioned by ``toYYYYMMDD(t_in)``; a day is dropped once all of it is older
than the retention period (the partition of the day exactly ``retention_days`` ago is kept). The
worker runs :func:`drop_expired` as a leader-only timer (``STREAMS_RETENTION_CHECK_SECONDS``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from truyvet.schema import connect
from truyvet.schema.cluster import LOCAL
from truyvet.schema.db import Database
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

TABLES = ("visits", "visits_by_venue")


def expired_partitions(
    db_partitions: list[tuple[str, str]], *, today: datetime, retention_days: int
) -> list[tuple[str, str]]:
    cutoff = int((today - timedelta(days=retention_days)).strftime("%Y%m%d"))
    return [(table, p) for table, p in db_partitions if p.isdigit() and int(p) < cutoff]


def drop_expired_in(db: Database, *, retention_days: int, today: datetime | None = None,
                    servers: Sequence[Database] | None = None) -> list[tuple[str, str]]:
    """Drop the expired daily partitions of the visit tables in ``db``; return (table, partition) dropped.

    :param servers: on the cluster profile, a client of every server (same database): each server drops
        the expired partitions of the replicated local tables it leads (18.16 forwards an ALTER run on a
        non-leader replica to the leader as the password-less ``default`` user, which does not exist
        here), and the drop replicates to the other replica of its shard.
    """
    if servers is not None:
        return _drop_on_leaders(servers, retention_days=retention_days, today=today)
    rows = db.execute(
        "SELECT DISTINCT table, partition FROM system.parts WHERE database = %(db)s AND active "
        "AND table IN %(tables)s",
        {"db": db.name, "tables": TABLES},
    )
    dropped = expired_partitions(sorted((str(t), str(p).strip("'")) for t, p in rows),
                                 today=today or datetime.now(UTC), retention_days=retention_days)
    for table, partition in dropped:
        db.execute(f"ALTER TABLE {table} DROP PARTITION {int(partition)}")
        logger.info("retention: dropped %s partition %s", table, partition)
    return dropped


def _drop_on_leaders(servers: Sequence[Database], *, retention_days: int,
                     today: datetime | None) -> list[tuple[str, str]]:
    local = tuple(t + LOCAL for t in TABLES)
    dropped: set[tuple[str, str]] = set()
    for server in servers:
        params = {"db": server.name, "tables": local}
        leading = {str(r[0]) for r in server.execute(
            "SELECT table FROM system.replicas WHERE database = %(db)s AND is_leader AND table IN %(tables)s", params)}
        rows = server.execute("SELECT DISTINCT table, partition FROM system.parts WHERE database = %(db)s "
                              "AND active AND table IN %(tables)s", params)
        found = sorted((str(t).removesuffix(LOCAL), str(p).strip("'")) for t, p in rows if str(t) in leading)
        for table, partition in expired_partitions(found, today=today or datetime.now(UTC),
                                                   retention_days=retention_days):
            server.execute(f"ALTER TABLE {table}{LOCAL} DROP PARTITION {int(partition)}")
            logger.info("retention: dropped %s partition %s on a shard", table, partition)
            dropped.add((table, partition))
    return sorted(dropped)


def server_settings(settings: CommonSettings) -> list[CommonSettings]:
    """One settings object per ClickHouse server of the profile (the first host and every alternate)."""
    hosts = [f"{settings.clickhouse_host}:{settings.clickhouse_port}"]
    hosts += [h for h in settings.clickhouse_alt_hosts.split(",") if h.strip()]
    out = []
    for host in hosts:
        name, _, port = host.strip().rpartition(":")
        out.append(settings.model_copy(update={"clickhouse_host": name, "clickhouse_port": int(port),
                                               "clickhouse_alt_hosts": ""}))
    return out


def drop_expired(settings: CommonSettings, *, today: datetime | None = None) -> list[tuple[str, str]]:
    """As the retention account: the one service account allowed DDL, held to the data database (it
    cannot reach the audit log's database; truyvet/stack/clickhouse_users.py)."""
    account = settings.as_account(clickhouse="retention")
    db = connect(account)
    servers = [connect(each) for each in server_settings(account)] if settings.clustered else None
    try:
        return drop_expired_in(db, retention_days=settings.retention_days, today=today, servers=servers)
    finally:
        db.close()
        for server in servers or ():
            server.close()
