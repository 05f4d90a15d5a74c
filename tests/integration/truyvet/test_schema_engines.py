"""The schema's migrations and the trace queries run on ClickHouse 18.16 (server) and current ClickHouse (chdb)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from streams.sink import VISIT_COLUMNS
from trace_api import queries
from truyvet.events import Visit
from truyvet.schema import migrations
from truyvet.schema.db import Database

T0 = int(datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp())


def _visit(person: str, venue: str, t_in: int, t_out: int, *, version: int = 1, deleted: int = 0,
           visit_id: str | None = None) -> tuple[object, ...]:
    return (visit_id or uuid.uuid4().hex, person, venue, queries.ts(t_in), queries.ts(t_out), "", "", version,
            deleted, datetime.now(UTC).replace(microsecond=0))


def test_every_migration_is_recorded(any_db: Database) -> None:
    recorded = {row[0] for row in any_db.execute("SELECT version FROM schema_migrations")}
    assert recorded == {m.version for m in migrations()}
    tables = {row[0] for row in any_db.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert {"visits", "visits_by_venue", "venues", "units", "api_tokens", "cases"} <= tables
    # the audit log lives apart (migration 0070): the one service account with DDL cannot reach it
    assert "audit_log" not in tables
    audit = {row[0] for row in any_db.execute(f"SELECT name FROM system.tables WHERE database = '{any_db.name}_audit'")}
    assert audit == {"audit_log"}
    # so do the personal stores (migration 0094): the worker's and the dispatcher's accounts cannot read them
    kept_apart = {row[0] for row in any_db.execute(
        f"SELECT name FROM system.tables WHERE database = '{any_db.name}_personal'")}
    assert kept_apart == {"person_details", "person_details_conflicts", "person_contacts", "person_cards"}
    assert not kept_apart & tables and "person_wards" in tables


def test_latest_version_wins_and_deleted_rows_vanish(any_db: Database) -> None:
    venue, person = f"ven-{uuid.uuid4().hex[:8]}", f"p-{uuid.uuid4().hex[:8]}"
    vid, gone = uuid.uuid4().hex, uuid.uuid4().hex
    any_db.insert("visits", VISIT_COLUMNS, [
        _visit(person, venue, T0, T0 + 3600, version=1, visit_id=vid),
        _visit(person, venue, T0, T0 + 1800, version=2, visit_id=vid),  # re-emitted: shorter stay
        _visit(person, venue, T0 + 60, T0 + 600, version=3, visit_id=gone),
        _visit(person, venue, T0 + 60, T0 + 600, version=4, deleted=1, visit_id=gone),  # tombstone
        _visit(person, venue, T0, T0 + 1800, version=2, visit_id=vid),  # redelivered batch: same row
    ])
    mine = queries.person_visits(any_db, [person], T0, T0 + 7200, 12 * 3600)
    assert mine == [Visit(vid, person, venue, T0, T0 + 1800)]
    at_venue = queries.venue_visits(any_db, [Visit("x", "case", venue, T0, T0 + 60)], 3600, 12 * 3600)
    assert at_venue == [Visit(vid, person, venue, T0, T0 + 1800)]


def test_venue_ranges_select_only_nearby_visits(any_db: Database) -> None:
    venue, other = f"ven-{uuid.uuid4().hex[:8]}", f"ven-{uuid.uuid4().hex[:8]}"
    any_db.insert("visits", VISIT_COLUMNS, [
        _visit("near", venue, T0 + 3600, T0 + 3700),  # starts exactly W after the case left: included
        _visit("far", venue, T0 + 3 * 86400, T0 + 3 * 86400 + 60),
        _visit("elsewhere", other, T0, T0 + 60),
    ])
    got = queries.venue_visits(any_db, [Visit("x", "case", venue, T0 - 600, T0)], 3600, 12 * 3600)
    assert [v.person_id for v in got] == ["near"]


def test_daily_partitions_drop(any_db: Database) -> None:
    venue = f"ven-{uuid.uuid4().hex[:8]}"
    old_day = int(datetime(2020, 1, 2, 10, tzinfo=UTC).timestamp())
    any_db.insert("visits", VISIT_COLUMNS, [_visit("p", venue, old_day, old_day + 60)])
    assert any_db.execute("SELECT count() FROM visits_by_venue WHERE venue_id = %(v)s", {"v": venue})[0][0] == 1
    any_db.execute("ALTER TABLE visits DROP PARTITION 20200102")
    any_db.execute("ALTER TABLE visits_by_venue DROP PARTITION 20200102")
    assert any_db.execute("SELECT count() FROM visits_by_venue WHERE venue_id = %(v)s", {"v": venue})[0][0] == 0
