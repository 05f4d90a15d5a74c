"""Retention drops whole daily partitions older than the retention period, on 18.16 and current ClickHouse."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from streams.retention import drop_expired_in
from streams.sink import VISIT_COLUMNS
from truyvet.schema import apply_migrations, connect
from truyvet.schema.db import ChdbDatabase, Database
from truyvet.schema.migrate import drop_database
from truyvet.schema.replicas import server_settings
from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import drop_databases, ensure_database
from truyvet.stack.processes import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=["clickhouse-18.16", "chdb", "cluster"])
def fresh_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:  # noqa: ANN001
    name = f"retention_{secrets.token_hex(3)}"
    if request.param == "cluster":  # issue 12: replicated local tables on 2 shards, dropped ON CLUSTER
        settings = request.getfixturevalue("cluster").settings.model_copy(update={"clickhouse_database": name})
        db = ensure_database(settings, wait_for_accounts=True)  # every server let the retention account in
        db.servers = [connect(s.as_account(clickhouse="retention")) for s in server_settings(settings)]  # type: ignore[attr-defined]
        try:
            yield db
        finally:
            for server in db.servers:  # type: ignore[attr-defined]
                server.close()
            db.close()
            drop_databases(settings)
        return
    if request.param == "chdb":
        # one embedded chdb server per process (conftest's chdb_db uses it too): a database of our own in it
        chdb = ChdbDatabase(database=name)
        apply_migrations(chdb)
        yield chdb
        drop_database(chdb, name)
        return
    infra: CommonSettings = request.getfixturevalue("infra")
    boot = connect(infra, database="default")
    boot.execute(f"CREATE DATABASE {name}")
    db = connect(infra, database=name)
    apply_migrations(db)
    try:
        yield db
    finally:
        db.close()
        drop_database(boot, name)
        boot.close()


def days(db: Database, table: str) -> list[str]:
    rows = db.execute(f"SELECT DISTINCT toString(toYYYYMMDD(t_in)) FROM {table}")  # 18.16: no ORDER BY 1
    return sorted(str(r[0]) for r in rows)


def test_partitions_older_than_retention_are_dropped(fresh_db: Database) -> None:
    today = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    ages = [40, 29, 28, 27, 1, 0]
    rows = []
    for age in ages:
        t = today - timedelta(days=age)
        rows.append((f"i{age}", "p1", "v1", t, t + timedelta(hours=1), f"{age}", "", 1, 0, today))
    fresh_db.insert("visits", VISIT_COLUMNS, rows)
    day = lambda age: (today - timedelta(days=age)).strftime("%Y%m%d")  # noqa: E731
    assert days(fresh_db, "visits") == sorted(day(a) for a in ages)
    assert days(fresh_db, "visits_by_venue") == sorted(day(a) for a in ages)

    servers = getattr(fresh_db, "servers", None)  # the cluster: each shard's leading replica drops its days
    dropped = drop_expired_in(fresh_db, retention_days=28, today=today, servers=servers)

    assert sorted(dropped) == sorted((t, day(a)) for t in ("visits", "visits_by_venue") for a in (40, 29))
    kept = sorted(day(a) for a in (28, 27, 1, 0))
    # On the cluster the other replica of each shard applies the drop from its replication log.
    wait_until(lambda: days(fresh_db, "visits") == kept and days(fresh_db, "visits_by_venue") == kept,
               timeout=60, what="the expired days gone")
    assert days(fresh_db, "visits") == kept
    assert days(fresh_db, "visits_by_venue") == kept
    assert drop_expired_in(fresh_db, retention_days=28, today=today, servers=servers) == []
