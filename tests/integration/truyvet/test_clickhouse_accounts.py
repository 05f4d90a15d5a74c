"""ClickHouse 18.16 accounts (issue 13, item 2): passwords, no ``default``, and no service account can
alter, delete from, drop or truncate the audit log; the retention account cannot reach it at all; the
personal stores are out of the worker's and the dispatcher's reach."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_driver import Client

from truyvet.schema import connect
from truyvet.schema.databases import PERSONAL_TABLES, audit_database, personal
from truyvet.schema.db import Database, DatabaseError
from truyvet.settings import CommonSettings

SERVICES = ("ingest", "worker", "trace", "dispatcher", "retention")
COLUMNS = ["at", "actor", "role", "ward_code", "action", "case_id", "params", "result_count", "reason"]


def _entry(actor: str) -> tuple[object, ...]:
    return (datetime.now(UTC).replace(microsecond=0), actor, "admin", "", "probe", "", "{}", 0, "")


@pytest.fixture()
def as_account(db: Database, infra: CommonSettings) -> Iterator:  # noqa: ANN401 - a factory
    made: list[Database] = []

    def make(account: str) -> Database:
        client = connect(infra.as_account(clickhouse=account))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _audit_rows(db: Database, audit: str) -> int:
    return int(db.execute(f"SELECT count() FROM {audit}")[0][0])


def test_no_service_account_can_alter_delete_drop_or_truncate_the_audit_log(as_account, db: Database,
                                                                           infra: CommonSettings) -> None:
    audit = f"{audit_database(infra.clickhouse_database)}.audit_log"
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert(audit, COLUMNS, [_entry("probe")])
    before = _audit_rows(db, audit)
    attacks = [
        f"ALTER TABLE {audit} DELETE WHERE 1 = 1",
        f"ALTER TABLE {audit} UPDATE actor = 'x' WHERE 1 = 1",
        f"ALTER TABLE {audit} DROP PARTITION {now:%Y%m}",
        f"ALTER TABLE {audit} DETACH PARTITION {now:%Y%m}",
        f"ALTER TABLE {audit} MODIFY COLUMN reason String DEFAULT 'x'",
        f"TRUNCATE TABLE {audit}",
        f"DROP TABLE {audit}",
        f"DETACH TABLE {audit}",
        f"RENAME TABLE {audit} TO {infra.clickhouse_database}.stolen_audit",
        f"OPTIMIZE TABLE {audit} FINAL",
        f"DROP DATABASE {audit_database(infra.clickhouse_database)}",
    ]
    for account in SERVICES:
        client = as_account(account)
        for attack in attacks:
            with pytest.raises(DatabaseError) as refused:
                client.execute(attack)
            # 392: DDL prohibited for the user (allow_ddl=0); 291: no access to the audit database.
            assert refused.value.context["code"] in (392, 291), (account, attack, refused.value)
        if account != "retention":
            with pytest.raises(DatabaseError):
                client.execute("SET allow_ddl = 1")  # a service cannot lift its own limit
    assert _audit_rows(db, audit) == before
    tables = {r[0] for r in db.execute(f"SHOW TABLES FROM {audit_database(infra.clickhouse_database)}")}
    assert tables == {"audit_log"}


def test_the_trace_api_account_appends_to_the_audit_log_and_retention_cannot_read_it(
        as_account, db: Database, infra: CommonSettings) -> None:
    audit = f"{audit_database(infra.clickhouse_database)}.audit_log"
    before = _audit_rows(db, audit)
    trace = as_account("trace")
    trace.insert(audit, COLUMNS, [_entry("trace-probe")])
    assert _audit_rows(trace, audit) == before + 1
    retention = as_account("retention")
    with pytest.raises(DatabaseError) as refused:
        retention.execute(f"SELECT count() FROM {audit}")
    assert refused.value.context["code"] == 291


def test_retention_may_drop_visit_partitions_but_the_worker_may_not(as_account, db: Database) -> None:
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
    db.insert("visits", ["visit_id", "person_id", "venue_id", "t_in", "t_out", "version", "written_at"],
              [("iacct", "pacct", "vacct", old, old, 1, old)])
    with pytest.raises(DatabaseError) as refused:
        as_account("worker").execute(f"ALTER TABLE visits DROP PARTITION {old:%Y%m%d}")
    assert refused.value.context["code"] == 392
    as_account("retention").execute(f"ALTER TABLE visits DROP PARTITION {old:%Y%m%d}")
    assert db.execute("SELECT count() FROM visits WHERE visit_id = 'iacct'")[0][0] == 0


def test_no_passwordless_default_account_and_wrong_passwords_are_refused(infra: CommonSettings) -> None:
    for user, password in (("default", ""), ("admin", ""), ("worker", "change-me-in-production"),
                           ("trace", infra.as_account(clickhouse="admin").clickhouse_secret())):
        client = Client(host=infra.clickhouse_host, port=infra.clickhouse_port, user=user, password=password)
        try:
            with pytest.raises(Exception) as refused:
                client.execute("SELECT 1")
            # unknown user, wrong password, password required
            assert getattr(refused.value, "code", None) in (192, 193, 194, 516), (user, refused.value)
        finally:
            client.disconnect()


def test_truyvet_sql_runs_one_query_as_the_admin(infra: CommonSettings) -> None:
    query = "SELECT user AS who, 41 + 1 AS n FROM system.processes WHERE query LIKE '%sql-probe%'"
    result = subprocess.run([sys.executable, "-m", "truyvet.cli", "sql", query], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "admin" in result.stdout and "42" in result.stdout and "who" in result.stdout
    # DDL goes through too (the admin's profile allows it), errors are one clear line
    bad = subprocess.run([sys.executable, "-m", "truyvet.cli", "sql", "SELECT nosuchfunction()"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == 1 and "nosuchfunction" in bad.stderr.lower() and "Stack trace" not in bad.stderr


def test_only_the_doors_and_retention_reach_the_personal_stores(as_account, db: Database,
                                                               infra: CommonSettings) -> None:
    """Ingest writes them, the trace API reads them for the health roles, retention deletes expired rows;
    the worker (which needs a residence ward alone: ``person_wards``) and the dispatcher cannot read them."""
    name = infra.clickhouse_database
    db.insert(personal(name, "person_details"), ["person_id", "full_name", "residence_ward_code", "updated_at"],
              [("pacct", "Tên Thật", "01834", datetime.now(UTC).replace(microsecond=0))])
    for account in ("ingest", "trace", "retention"):
        assert as_account(account).execute(
            f"SELECT full_name FROM {personal(name, 'person_details')} WHERE person_id = 'pacct'") == [("Tên Thật",)]
    for account in ("worker", "dispatcher"):
        client = as_account(account)
        for table in PERSONAL_TABLES:
            with pytest.raises(DatabaseError) as refused:
                client.execute(f"SELECT count() FROM {personal(name, table)}")
            assert refused.value.context["code"] == 291, (account, table, refused.value)  # no access to the database
        assert client.execute("SELECT count() FROM person_wards WHERE person_id = 'nobody'") == [(0,)]
