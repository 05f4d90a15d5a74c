"""Readers of the versioned visits tables at scale: FINAL vs argMax vs latest-version-in-the-client.

``pytest tests/benchmarks/test_streams_readers.py -m benchmark -s``; size with
``STREAMS_BENCH_READER_ROWS`` (default 5,000,000 visit rows, 10% of them re-emitted with a higher
version and 2% tombstoned, as late scans do). Data is generated inside ClickHouse (INSERT ... SELECT
from system.numbers) in a database of its own on the configured server, dropped at the end. Each
reader answers the two questions the trace API asks: the visits of 200 persons over 3 days (primary
key range on ``visits``) and everyone at 50 venues over a day (``visits_by_venue``); the three must
return the same visits. Figures go to BENCHMARKS.md (section ``streams-readers``).

Outcome (see BENCHMARKS.md): argMax GROUP BY is several times faster than FINAL on 18.16; the
latest-version-in-the-client reader that trace_api uses is close to argMax. The stream tests read
with argMax (tests/integration/streams/harness.py).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest

from tests.benchmarks.report import write_section
from truyvet.schema import apply_migrations, connect
from truyvet.schema.db import Database
from truyvet.schema.migrate import drop_database
from truyvet.settings import CommonSettings

pytestmark = pytest.mark.benchmark

ROWS = int(os.environ.get("STREAMS_BENCH_READER_ROWS", "5000000"))
DAYS = 14
START = 1_780_000_000
PERSONS = max(1000, ROWS // (2 * DAYS))
VENUES = max(100, PERSONS // 10)

Reader = Callable[[Database, str, str], set[tuple[str, int]]]


def load(db: Database) -> None:
    visit = (f"concat('i', toString(number)) AS visit_id, concat('p', toString(number % {PERSONS})) AS person_id, "
             f"concat('v', toString(intHash32(number) % {VENUES})) AS venue_id, "
             f"toDateTime({START} + intDiv(number * {DAYS * 86400}, {ROWS})) AS t_in, "
             "t_in + 3600 AS t_out, '' AS source_in, '' AS source_out")
    db.execute(f"INSERT INTO visits SELECT {visit}, 1 AS version, 0 AS deleted, now() AS written_at "
               f"FROM system.numbers LIMIT {ROWS}")
    # Re-emissions (a later scan cut the visit) and tombstones, as separate later inserts.
    base = f"(SELECT {visit} FROM system.numbers LIMIT {ROWS})"
    db.execute("INSERT INTO visits SELECT visit_id, person_id, venue_id, t_in, t_in + 1800, source_in, source_out, "
               f"2, 0, now() FROM {base} WHERE cityHash64(visit_id) % 10 = 0")
    db.execute("INSERT INTO visits SELECT visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, "
               f"3, 1, now() FROM {base} WHERE cityHash64(visit_id) % 50 = 1")


def person_where() -> str:
    persons = ", ".join(f"'p{i * 37 % PERSONS}'" for i in range(200))
    lo, hi = START + 5 * 86400, START + 8 * 86400
    return f"person_id IN ({persons}) AND t_in >= toDateTime({lo}) AND t_in <= toDateTime({hi})"


def venue_where() -> str:
    venues = ", ".join(f"'v{i * 13 % VENUES}'" for i in range(50))
    lo, hi = START + 6 * 86400, START + 7 * 86400
    return f"venue_id IN ({venues}) AND t_in >= toDateTime({lo}) AND t_in <= toDateTime({hi})"


def final_reader(db: Database, table: str, where: str) -> set[tuple[str, int]]:
    rows = db.execute(f"SELECT visit_id, toUInt32(t_out), deleted FROM {table} FINAL WHERE {where}")
    return {(v, int(t)) for v, t, d in rows if not d}


def argmax_reader(db: Database, table: str, where: str) -> set[tuple[str, int]]:
    rows = db.execute(f"SELECT visit_id, toUInt32(argMax(t_out, version)), argMax(deleted, version) FROM {table} "
                      f"WHERE {where} GROUP BY visit_id")
    return {(v, int(t)) for v, t, d in rows if not d}


def client_reader(db: Database, table: str, where: str) -> set[tuple[str, int]]:
    rows = db.execute(f"SELECT visit_id, toUInt32(t_out), deleted, version FROM {table} WHERE {where}")
    latest: dict[str, tuple[int, int, int]] = {}
    for v, t, d, ver in rows:
        old = latest.get(v)
        if old is None or ver >= old[2]:
            latest[v] = (int(t), int(d), int(ver))
    return {(v, t) for v, (t, d, _) in latest.items() if not d}


READERS: dict[str, Reader] = {"FINAL": final_reader, "argMax GROUP BY": argmax_reader,
                              "latest version in the client": client_reader}


def timed(reader: Reader, db: Database, table: str, where: str, runs: int = 7) -> tuple[float, set]:
    result = reader(db, table, where)  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        reader(db, table, where)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def test_streams_readers() -> None:
    base = CommonSettings()
    name = f"bench_readers_{os.getpid()}"
    settings = base.model_copy(update={"clickhouse_database": name})
    boot = connect(base, database="default")
    boot.execute(f"CREATE DATABASE IF NOT EXISTS {name}")
    db = connect(settings)
    try:
        apply_migrations(db)
        t0 = time.perf_counter()
        load(db)
        load_s = time.perf_counter() - t0
        lines = ["| reader | 200 persons x 3 days (`visits`) | 50 venues x 1 day (`visits_by_venue`) |",
                 "|---|---|---|"]
        results: dict[str, list[float]] = {}
        answers: dict[str, tuple[set, set]] = {}
        for label, reader in READERS.items():
            tp, ap = timed(reader, db, "visits", person_where())
            tv, av = timed(reader, db, "visits_by_venue", venue_where())
            results[label] = [tp, tv]
            answers[label] = (ap, av)
            lines.append(f"| {label} | {tp * 1000:.1f} ms ({len(ap)} visits) | {tv * 1000:.1f} ms ({len(av)} visits) |")
        first = next(iter(answers.values()))
        assert all(a == first for a in answers.values()), "the readers disagree"
        parts = db.execute("SELECT count() FROM system.parts WHERE database = %(d)s AND active", {"d": name})[0][0]
        version = db.execute("SELECT version()")[0][0]
        fastest = min(results, key=lambda k: sum(results[k]))
        body = (f"ClickHouse {version}; {ROWS:,} visits + 10% re-emitted + 2% tombstones "
                f"({PERSONS:,} persons, {VENUES:,} venues, {DAYS} days; loaded in {load_s:.1f} s, {parts} active "
                "parts, unmerged as right after ingest). Median of 7 runs after a warm-up; all readers return "
                "the same visits. The machine is shared with other engineers' tests: figures are noisy.\n\n"
                + "\n".join(lines) + f"\n\nFastest here: **{fastest}**.")
        write_section("streams-readers", "Visit readers: FINAL vs argMax vs client-side latest version", body,
                      command="pytest tests/benchmarks/test_streams_readers.py -m benchmark -s")
        print(body)
    finally:
        db.close()
        drop_database(boot, name)
        boot.close()
