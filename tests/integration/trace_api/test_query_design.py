"""The query design: person-keyed and venue-keyed range reads, one query round per generation,
the same SQL on ClickHouse 18.16 (server) and current ClickHouse (chdb)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.integration.trace_api.conftest import T0, insert_visits
from tests.unit.trace_api.reference import MINUTE, RefVisit, expected_contacts
from trace_api import queries
from trace_api.contacts import TraceParams, trace
from truyvet.events import Visit
from truyvet.schema import apply_migrations, connect
from truyvet.schema.db import Database, DriverDatabase
from truyvet.schema.migrate import drop_database
from truyvet.settings import CommonSettings

H = 60 * MINUTE
PARAMS = TraceParams(depth=2, window=H, min_overlap=0, max_stay=24 * H)


def _scenario(prefix: str) -> list[RefVisit]:
    """A case, five F1s at two venues, each F1 with their own F2 elsewhere."""
    v = [RefVisit(uuid.uuid4().hex, f"{prefix}case", f"{prefix}V", T0, T0 + H),
         RefVisit(uuid.uuid4().hex, f"{prefix}case", f"{prefix}W", T0 + 2 * H, T0 + 3 * H)]
    for i in range(5):
        venue = f"{prefix}V" if i < 3 else f"{prefix}W"
        start = T0 + (2 * H if i >= 3 else 0) + i * 5 * MINUTE
        v.append(RefVisit(uuid.uuid4().hex, f"{prefix}f1_{i}", venue, start, start + 20 * MINUTE))
        v.append(RefVisit(uuid.uuid4().hex, f"{prefix}f1_{i}", f"{prefix}X{i}", T0 + 4 * H, T0 + 5 * H))
        v.append(RefVisit(uuid.uuid4().hex, f"{prefix}f2_{i}", f"{prefix}X{i}", T0 + 5 * H, T0 + 6 * H))
    return v


def test_trace_is_two_queries_per_generation_on_both_engines(any_db: Database) -> None:
    prefix = f"q{uuid.uuid4().hex[:6]}-"
    visits = _scenario(prefix)
    insert_visits(any_db, visits)
    for depth, rounds in ((1, 2), (2, 4)):
        result = trace(any_db, person_id=f"{prefix}case", start=T0, end=T0 + 8 * H,
                       params=TraceParams(depth=depth, window=H, min_overlap=0, max_stay=24 * H))
        want = expected_contacts(visits, f"{prefix}case", T0, T0 + 8 * H, window=H, min_overlap=0, depth=depth)
        assert {c.person_id: c.generation for c in result.contacts} == {p: c.generation for p, c in want.items()}
        assert len(result.contacts) == (5 if depth == 1 else 10)
        assert result.queries == rounds  # not one per contact


def test_per_category_window_on_both_engines(any_db: Database) -> None:
    prefix = f"c{uuid.uuid4().hex[:6]}-"
    now = queries.ts(T0)
    cols = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
            "valid_from", "valid_until", "created_at", "updated_at"]
    any_db.insert("venues", cols, [(f"{prefix}bar", "b", "bar", "01840", "", "", 0, now, now, now, now),
                                   (f"{prefix}shop", "s", "market_shop", "01840", "", "", 0, now, now, now, now)])
    visits = [RefVisit("1", f"{prefix}case", f"{prefix}bar", T0, T0 + H),
              RefVisit("2", f"{prefix}case", f"{prefix}shop", T0 + 5 * H, T0 + 6 * H),
              RefVisit("3", f"{prefix}late_bar", f"{prefix}bar", T0 + H + 90 * MINUTE, T0 + 3 * H),
              RefVisit("4", f"{prefix}late_shop", f"{prefix}shop", T0 + 6 * H + 90 * MINUTE, T0 + 8 * H)]
    insert_visits(any_db, visits)
    params = TraceParams(depth=1, window=H, min_overlap=0, max_stay=24 * H, category_window={"bar": 90 * MINUTE})
    result = trace(any_db, person_id=f"{prefix}case", start=T0, end=T0 + 8 * H, params=params)
    assert [c.person_id for c in result.contacts] == [f"{prefix}late_bar"]  # 90 min at a bar, 60 at a shop


@pytest.fixture(scope="module")
def big_db(infra: CommonSettings) -> Iterator[DriverDatabase]:
    """Its own database with 1M filler visits (500 persons' worth of history at 2,000 venues, 5 days)."""
    name = f"qd_{uuid.uuid4().hex[:8]}"
    admin = connect(infra, database="default")
    admin.execute(f"CREATE DATABASE {name}")
    db = connect(infra, database=name)
    apply_migrations(db)
    t0 = int(T0 - 2 * 86400)
    db.execute(
        "INSERT INTO visits (visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, version, deleted,"
        " written_at) SELECT concat('f', toString(number)), concat('p', toString(number % 50000)),"
        f" concat('v', toString(intHash32(number) % 2000)), toDateTime({t0} + number % 432000),"
        f" toDateTime({t0} + number % 432000 + 1800), '', '', 1, 0, now() FROM system.numbers LIMIT 1000000"
    )
    yield db
    db.close()
    drop_database(admin, name)
    admin.close()


def _read_rows(db: DriverDatabase, marker: str, table: str) -> list[int]:
    db.execute("SYSTEM FLUSH LOGS")
    rows = db.execute(
        "SELECT read_rows FROM system.query_log WHERE type = 2 AND query LIKE %(t)s AND query LIKE %(m)s "
        "AND query NOT LIKE '%%query_log%%' AND event_date >= yesterday()",
        {"t": f"%FROM {table} %", "m": f"%{marker}%"},
    )
    return [int(r[0]) for r in rows]


def test_range_reads_touch_a_sliver_of_the_table(big_db: DriverDatabase) -> None:
    total = big_db.execute("SELECT count() FROM visits")[0][0]
    assert total == 1_000_000 and big_db.execute("SELECT count() FROM visits_by_venue")[0][0] == total
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    visits = _scenario(prefix) + [RefVisit(uuid.uuid4().hex, f"{prefix}busy", "v7", T0, T0 + H),
                                  RefVisit(uuid.uuid4().hex, f"{prefix}case", "v7", T0 + 10 * MINUTE, T0 + H)]
    insert_visits(big_db, visits)
    result = trace(big_db, person_id=f"{prefix}case", start=T0, end=T0 + 8 * H, params=PARAMS)
    assert f"{prefix}busy" in {c.person_id for c in result.contacts}
    assert len([c for c in result.contacts if c.person_id.startswith("p")]) > 10  # filler co-visitors at v7
    person_reads = _read_rows(big_db, f"{prefix}case", "visits")  # the case's visits (generation 1)
    venue_reads = _read_rows(big_db, f"{prefix}V", "visits_by_venue")  # co-visitors, one read per generation
    assert len(person_reads) == 1 and len(venue_reads) == 2
    # A full scan reads 1,000,000 rows; key ranges read a few 1,024-row granules per daily part. The
    # generation-2 read covers the ranges of every F1 (dozens of filler persons at v7) in one query.
    assert 0 < person_reads[0] <= 10_000, person_reads
    assert 0 < min(venue_reads) <= 10_000 and max(venue_reads) <= 50_000, venue_reads


def test_many_ranges_read_as_one_venue_set_with_the_same_answer(any_db: Database) -> None:
    """Past MAX_OR_RANGES the venue read switches form; the visits it returns stay exactly the same."""
    prefix = f"m{uuid.uuid4().hex[:6]}-"
    spans, rows = [], []
    for i in range(queries.MAX_OR_RANGES + 6):
        venue, t = f"{prefix}v{i}", T0 + (i % 7) * 3 * H
        spans.append(Visit(f"c{i}", f"{prefix}case", venue, t, t + H))
        rows += [RefVisit(f"{prefix}{i}a", f"{prefix}x", venue, t + 2 * H, t + 3 * H),  # exactly W after
                 RefVisit(f"{prefix}{i}b", f"{prefix}y", venue, t + 2 * H + 1, t + 3 * H),  # outside the range
                 RefVisit(f"{prefix}{i}c", f"{prefix}z", venue, t - 26 * H, t - 25 * H)]  # before it
    insert_visits(any_db, rows)
    assert len(queries.venue_ranges(spans, H, 24 * H)) > queries.MAX_OR_RANGES
    together = queries.venue_visits(any_db, spans, H, 24 * H)
    one_by_one = [v for s in spans for v in queries.venue_visits(any_db, [s], H, 24 * H)]
    assert sorted(together, key=str) == sorted(one_by_one, key=str)
    assert {v.person_id for v in together} == {f"{prefix}x"} and len(together) == len(spans)


def test_a_read_naming_ten_thousand_venues_is_accepted(any_db: Database) -> None:
    """Parameters are statement text: a large depth-2 read is far past ClickHouse's default 256 KiB."""
    prefix = f"k{uuid.uuid4().hex[:6]}-"
    spans = [Visit(f"c{i}", f"{prefix}case", f"{prefix}venue-{i:05d}", T0, T0 + H) for i in range(10_000)]
    insert_visits(any_db, [RefVisit(f"{prefix}b", f"{prefix}x", f"{prefix}venue-09999", T0 + H, T0 + 2 * H)])
    assert [v.person_id for v in queries.venue_visits(any_db, spans, H, 24 * H)] == [f"{prefix}x"]
    persons = [f"{prefix}p{i:05d}" for i in range(20_000)] + [f"{prefix}x"]
    assert [v.visit_id for v in queries.person_visits(any_db, persons, T0, T0 + H, 24 * H)] == [f"{prefix}b"]
