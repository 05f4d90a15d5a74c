"""Retention: visits (and health declarations) older than the retention period go by whole daily partitions
(DROP PARTITION); personal details, phones, citizens, cases, alerts, follow-ups and the audit log by their
own rules (:func:`sweep`).

Both visit tables are partitioned by ``toYYYYMMDD(t_in)``; a day is dropped once all of it is older
than the retention period (the partition of the day exactly ``retention_days`` ago is kept). The
worker runs :func:`drop_expired` as a leader-only timer (``STREAMS_RETENTION_CHECK_SECONDS``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streams.config import StreamsSettings
from truyvet.schema import connect
from truyvet.schema.cluster import LOCAL
from truyvet.schema.databases import audit_database, database_of
from truyvet.schema.db import Database
from truyvet.schema.replicas import every_server, leading
from truyvet.settings import CommonSettings

logger = logging.getLogger(__name__)

TABLES = ("visits", "visits_by_venue", "declarations")  # declarations: issue 15, same retention
AUDIT = "audit_log"


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


def drop_expired(settings: CommonSettings, *, today: datetime | None = None) -> list[tuple[str, str]]:
    """As the retention account: the one service account allowed DDL, held to the data database (it
    cannot reach the audit log's database; truyvet/stack/clickhouse_users.py)."""
    account = settings.as_account(clickhouse="retention")
    db = connect(account)
    try:
        with every_server(account) as servers:
            return drop_expired_in(db, retention_days=settings.retention_days, today=today, servers=servers)
    finally:
        db.close()


# -- records of persons, cases and alerts (issue 14) ---------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` whose ``column`` (a time) is older than ``days`` are deleted."""

    table: str
    column: str
    days: int


def rules(settings: StreamsSettings, *, audit: bool = True) -> list[Rule]:
    """Each store's retention (README, "Retention"); the audit log goes by whole monthly partitions.

    :param audit: include the audit log (only an admin account reaches its database; the worker's
        retention account does not, so the worker leaves it to ``truyvet retention run``).
    """
    s = settings
    found = [Rule("person_details", "updated_at", s.retention_person_details_days),
             Rule("person_details_conflicts", "received_at", s.retention_person_details_days),
             Rule("person_wards", "updated_at", s.retention_person_details_days),
             Rule("person_contacts", "updated_at", s.retention_phones_days),
             Rule("person_cards", "issued_at", s.retention_phones_days),
             Rule("citizens", "created_at", s.retention_citizens_days),
             Rule("cases", "infectious_to", s.retention_cases_days),
             Rule("alerts", "created_at", s.retention_alerts_days),
             Rule("follow_ups", "created_at", s.retention_follow_ups_days)]
    return found + [Rule(AUDIT, "at", s.retention_audit_days)] if audit else found


def expired_months(partitions: list[str], *, cutoff: datetime) -> list[str]:
    """``YYYYMM`` partitions whose whole month lies before ``cutoff``."""
    out = []
    for p in partitions:
        if len(p) == 6 and p.isdigit():
            year, month = int(p[:4]), int(p[4:])
            after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)  # the next month's first day
            if after <= cutoff:
                out.append(p)
    return out


def sweep_in(db: Database, rule_list: list[Rule], *, now: datetime | None = None,
             servers: Sequence[Database] | None = None) -> dict[str, int]:
    """Delete what each rule says has expired; return the rows (or for the audit log: months) removed.

    ClickHouse 18.16 has no TTL: rows go by ``ALTER TABLE ... DELETE`` (a mutation the server applies in
    the background, issued only when there is something to delete) and the audit log by
    ``DROP PARTITION`` of months entirely older than its retention (it is partitioned by month and is
    never otherwise altered; it lives in ``<database>_audit``, migration 0070).

    :param servers: on the cluster profile, a client of every server: the statements run on the
        replicated local tables, on the replica leading each (see :func:`drop_expired_in`).
    """
    at = now or datetime.now(UTC)
    removed: dict[str, int] = {}
    for rule in rule_list:
        cutoff = (at - timedelta(days=rule.days)).replace(microsecond=0)
        if rule.table == AUDIT:
            audit_db = audit_database(db.name)
            months: set[str] = set()
            for server, table in leading(db, servers, audit_db, AUDIT):
                parts = server.execute("SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s "
                                       "AND active AND table = %(t)s", {"db": audit_db, "t": table})
                for month in expired_months(sorted(str(p[0]).strip("'") for p in parts), cutoff=cutoff):
                    server.execute(f"ALTER TABLE {audit_db}.{table} DROP PARTITION {int(month)}")
                    logger.info("retention: dropped audit_log month %s", month)
                    months.add(month)
            removed[rule.table] = len(months)
            continue
        database = database_of(db.name, rule.table)  # the personal stores are in <db>_personal
        count = int(db.execute(f"SELECT count() FROM {database}.{rule.table} WHERE {rule.column} < %(cutoff)s",
                               {"cutoff": cutoff})[0][0])
        if count:
            for server, table in leading(db, servers, database, rule.table):
                server.execute(f"ALTER TABLE {database}.{table} DELETE WHERE {rule.column} < %(cutoff)s",
                               {"cutoff": cutoff})
            logger.info("retention: deleting %d rows of %s older than %s", count, rule.table, cutoff)
        removed[rule.table] = count
    return removed


def sweep(settings: StreamsSettings, *, now: datetime | None = None, audit: bool = False) -> dict[str, int]:
    """The worker's sweep runs as the retention account (not the audit log); ``truyvet retention run`` as
    the operator's admin account, the audit log included (``audit=True``)."""
    account = settings if audit else settings.as_account(clickhouse="retention")
    db = connect(account)
    try:
        with every_server(account) as servers:
            return sweep_in(db, rules(settings, audit=audit), now=now, servers=servers)
    finally:
        db.close()
