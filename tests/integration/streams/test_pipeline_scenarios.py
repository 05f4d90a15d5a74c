"""The real pipeline (Kafka -> faust worker(s) -> ClickHouse) against the reference visit model.

One run carries four scenarios built from the same generated scans for different people: in time
order, shuffled, with resends (same scan_id again) and with late scans (offline uploads arriving
after everything else); plus scans produced without a key (re-keyed by the worker; second pipeline)
and invalid scans (dead-lettered). The same records go through one worker and through two workers sharing the
partitions; both must equal the reference and each other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.integration.streams.harness import Pipeline, as_map, assert_same, metric, stay_function, wait_for
from tests.integration.topics import all_records
from tests.unit.streams.reference import RefScan, reference_visits
from tests.unit.streams.scenarios import generate, make_venues, renamed, shuffled, with_late, with_resends
from truyvet.events import Topics

pytestmark = pytest.mark.integration

SEED = 20211014


def scenario(rng: random.Random, start: int) -> tuple[list[RefScan], list[RefScan]]:
    """(keyed arrivals, unkeyed arrivals) of all four scenarios."""
    venues = make_venues(rng, 30)
    base = generate(rng, persons=40, venues=venues, start=start, visits_per_person=8)
    keyed = (renamed(base, "ord") + renamed(shuffled(rng, base), "shf")
             + renamed(with_resends(rng, shuffled(rng, base), 0.2), "rsd"))
    late = renamed(with_late(rng, base, 0.3), "lat")
    return keyed + late[: len(late) // 2], late[len(late) // 2:]


def window_duplicates(arrivals: list[RefScan], stay_for: Callable[[str], int]) -> int:
    """Scans that were near-duplicates when they arrived (what the worker counts), per the reference."""
    seen: dict[str, list[RefScan]] = {}
    ids: set[str] = set()
    count = 0
    for s in arrivals:
        if s.scan_id in ids:
            continue
        ids.add(s.scan_id)
        mine = seen.setdefault(s.person_id, [])
        mine.append(s)
        visits = reference_visits(mine, stay_for=stay_for).values()
        if not any(v.visit_id[1:] == s.scan_id for v in visits) and not _closes(s, mine, stay_for):
            count += 1
    return count


def _closes(s: RefScan, mine: list[RefScan], stay_for: Callable[[str], int]) -> bool:
    """Whether the ``out`` scan ``s`` ends an ``in`` visit (then it is used, not a duplicate)."""
    if s.direction != "out":
        return False
    without = [m for m in mine if m.scan_id != s.scan_id]
    a = reference_visits(mine, stay_for=stay_for)
    b = reference_visits(without, stay_for=stay_for)
    return any(k.startswith("i") and b.get(k) != v and v.t_out == s.t for k, v in a.items())


def test_one_and_two_workers_match_the_reference(pipeline: Callable[..., Pipeline]) -> None:
    rng = random.Random(SEED)
    start = int((datetime.now(UTC) - timedelta(days=4)).timestamp())
    venues = make_venues(random.Random(SEED), 30)
    keyed, unkeyed = scenario(rng, start)
    stay_for = stay_function(venues)
    expected = reference_visits(keyed + unkeyed, stay_for=stay_for)

    one, two = pipeline(extra_env={"STREAMS_RETENTION_CHECK_SECONDS": "1"}), pipeline()
    for p in (one, two):
        p.create(venues)
    # An expired day of visits: the worker's scheduled retention job must drop its partition.
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    db = one.db()
    try:
        db.insert("visits", ["visit_id", "person_id", "venue_id", "t_in", "t_out", "version", "written_at"],
                  [("iold", "old-person", venues[0].venue_id, old, old + timedelta(hours=1), 1, old)])
    finally:
        db.close()

    one.start_worker()
    two.start_worker("worker")
    two.start_worker("worker-1")
    wait_for(lambda: _shares(two, ("worker", "worker-1")), timeout=120, what="both workers holding partitions")
    invalid = [b"{not json", orjson.dumps({"scan_id": "x", "scanned_at": "2021-10-14T08:00:00+07:00"}),
               orjson.dumps({"scan_id": "5f0c3a52-6f5e-4a8b-9d3e-2c1f0a9b8c7d", "person_id": "p1",
                             "venue_id": "nowhere", "scanned_at": datetime.now(UTC).isoformat()})]
    # The second pipeline gets part of the late scans without a key (the worker re-keys them), the
    # first gets them keyed: the same scans, so the same visits; and per person the first worker sees
    # exactly the production order, which makes its duplicate counts exact.
    for p in (one, two):
        p.produce(keyed)
        p.produce(unkeyed, keyed=p is one)
        producer = p._producer
        assert producer is not None
        for raw in invalid:
            producer.send(p.settings.topic(Topics.SCANS), value=raw)
        producer.flush()
    one.wait_caught_up()
    two.wait_caught_up(workers=("worker", "worker-1"))

    got_one = as_map(one.visits())
    assert_same(one, got_one, expected, keyed + unkeyed)
    assert as_map(one.visits("visits_by_venue")) == expected
    got_two = as_map(two.visits())
    assert_same(two, got_two, expected, keyed + unkeyed)
    assert got_two == got_one

    # Both workers of the second pipeline did part of the work, and unkeyed scans were re-keyed.
    rekeyed = 0.0
    for name in ("worker", "worker-1"):
        samples = two.metrics(name)
        assert samples is not None
        assert metric(samples, "truyvet_streams_scans_consumed_total") > 0, name
        rekeyed += metric(samples, "truyvet_streams_scans_rekeyed_total")
    assert rekeyed > 0

    # Metrics of the single worker, checked through its /metrics.
    arrivals = keyed + unkeyed
    resent = len(arrivals) - len({s.scan_id for s in arrivals})
    samples = one.metrics()
    assert samples is not None
    assert metric(samples, "truyvet_streams_scans_consumed_total") == len(arrivals) + len(invalid)
    assert metric(samples, "truyvet_streams_dead_lettered_total") == len(invalid)
    assert metric(samples, "truyvet_streams_dead_lettered_total", code="unknown_venue") == 1
    assert metric(samples, "truyvet_streams_duplicates_total", kind="scan_id") == resent
    assert metric(samples, "truyvet_streams_duplicates_total", kind="window") == window_duplicates(arrivals, stay_for)
    assert metric(samples, "truyvet_streams_visit_rows_written_total", kind="upsert") >= len(expected)
    assert metric(samples, "truyvet_streams_batch_seconds_count") >= 1
    assert metric(samples, "truyvet_streams_sink_batch_seconds_count") >= 1
    wait_for(lambda: _lag_reported_zero(one), timeout=30, what="consumer lag gauge at 0")

    # Dead letters carry the reason.
    letters = _read_all(one, one.settings.topic(Topics.SCANS_DLQ))
    assert sorted(orjson.loads(v)["error_code"] for v in letters) == ["invalid_scan", "invalid_scan",
                                                                       "unknown_venue"]
    # Retention ran as the worker's scheduled job: the 40-day-old partition is gone, recent ones stay.
    wait_for(lambda: not _partition_exists(one, old), timeout=30, what="expired partition dropped")
    assert as_map(one.visits()) == expected


def _shares(p: Pipeline, names: tuple[str, ...]) -> bool:
    scans = p.settings.topic(Topics.SCANS)
    held = [metric(p.metrics(n) or {}, "truyvet_streams_assigned_partitions", topic=scans) for n in names]
    return all(h > 0 for h in held) and sum(held) == p.settings.scans_partitions


def _lag_reported_zero(p: Pipeline) -> bool:
    samples = p.metrics()
    return bool(samples) and any(k.startswith("truyvet_streams_consumer_lag{") for k in samples) and \
        metric(samples, "truyvet_streams_consumer_lag") == 0


def _partition_exists(p: Pipeline, day: datetime) -> bool:
    db = p.db()
    try:
        rows = db.execute("SELECT count() FROM system.parts WHERE database = %(db)s AND table = 'visits' "
                          "AND active AND partition = %(p)s", {"db": p.database, "p": day.strftime("%Y%m%d")})
    finally:
        db.close()
    return bool(rows[0][0])


def _read_all(p: Pipeline, topic: str) -> list[bytes]:
    return [m.value for m in all_records(p.settings, topic)]
