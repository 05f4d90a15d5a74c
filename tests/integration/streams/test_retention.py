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
from truyvet.schema.migrate import drop_database as drop_databases
from truyvet.settings import CommonSettings
from truyvet.stack.clickhouse import drop_database, ensure_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["clickhouse-18.16", "chdb", "cluster"])
def fresh_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:  # noqa: ANN001
    name = f"retention_{secrets.token_hex(3)}"
    if request.param == "cluster":  # issue 12: replicated local tables on 2 shards, dropped ON CLUSTER
        settings = request.getfixturevalue("cluster").settings.model_copy(update={"clickhouse_database": name})
        db = ensure_database(settings)
        db.cluster = settings.clickhouse_cluster  # type: ignore[attr-defined]
        try:
            yield db
        finally:
            db.close()
            drop_database(settings)
        return
    if request.param == "chdb":
        # one embedded chdb server per process (conftest's chdb_db uses it too): a database of our own in it
        chdb = ChdbDatabase(database=name)
        apply_migrations(chdb)
        yield chdb
        drop_databases(chdb, name)
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
        drop_databases(boot, name)
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

    cluster = getattr(fresh_db, "cluster", None)
    dropped = drop_expired_in(fresh_db, retention_days=28, today=today, cluster=cluster)

    assert sorted(dropped) == sorted((t, day(a)) for t in ("visits", "visits_by_venue") for a in (40, 29))
    kept = sorted(day(a) for a in (28, 27, 1, 0))
    assert days(fresh_db, "visits") == kept
    assert days(fresh_db, "visits_by_venue") == kept
    assert drop_expired_in(fresh_db, retention_days=28, today=today, cluster=cluster) == []
