"""The worker's batch logic without Kafka (issue 11): parse → check → visits → rows, dead letters, re-keying."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from streams.processor import PersonState, VisitRules
from streams.store import ChangelogStore
from streams.visit_batch import VisitBatch
from streams.visits_worker import PERSON_STATE, visit_notices
from truyvet.partitioning import partition_for

PARTITIONS = 8
NOW = int(datetime.now(UTC).timestamp())


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _batch() -> VisitBatch:
    store = ChangelogStore("person-scans", "t-person-scans", codec=PERSON_STATE, bootstrap="unused")
    store.partitions = {p: {} for p in range(PARTITIONS)}
    rules = VisitRules(stay_for=lambda _venue: 3600, max_stay=12 * 3600, dedup_window=600, horizon=72 * 3600)
    return VisitBatch(rules=rules, store=store, known_venue={"v1", "v2"}.__contains__, partitions=PARTITIONS,
                      retention_seconds=28 * 86400)


def _scan(person: str, venue: str, t: int, direction: str = "in", scan_id: str | None = None) -> bytes:
    at = datetime.fromtimestamp(t, UTC).isoformat()
    return orjson.dumps({"scan_id": scan_id or str(uuid.uuid4()), "scanned_at": at, "direction": direction,
                         "venue_id": venue, "person_id": person})


def _records(values: list[tuple[str, bytes]], start: int = 0) -> list[Record]:
    """Each value on its person's partition, offsets from ``start`` per partition."""
    offsets: dict[int, int] = {}
    out = []
    for person, value in values:
        p = partition_for(person, PARTITIONS)
        offsets[p] = offsets.get(p, start)
        out.append(Record("scans", p, offsets[p], person.encode(), value))
        offsets[p] += 1
    return out


def test_an_in_and_an_out_make_one_visit_and_the_state_is_stored() -> None:
    batch = _batch()
    t0 = NOW - 3 * 3600
    records = _records([("p1", _scan("p1", "v1", t0)), ("p1", _scan("p1", "v1", t0 + 1200, "out"))])
    result = batch.apply(batch.parse(records), NOW)
    live = {r[0]: r for r in result.rows if not r[8]}
    assert [(r[2], r[3], r[4]) for r in live.values()] == [("v1", t0, t0 + 1200)]
    assert result.consumed == 2 and not result.dead_letters and not result.rekeyed
    stored = batch.store.get(partition_for("p1", PARTITIONS), b"p1")
    assert stored is not None and len(PersonState.from_bytes(stored).scans) == 2
    notices = visit_notices(result.rows, PARTITIONS)
    assert sum(len(orjson.loads(m)["visits"]) for ms in notices.values() for m in ms) == sum(
        1 for r in result.rows if not r[8])


def test_bad_records_are_dead_lettered_with_their_reason_and_no_id_number_kept() -> None:
    batch = _batch()
    t = NOW - 3600
    records = _records([
        ("p1", b"not json"),
        ("p1", _scan("001099012345", "v1", t)),  # a raw ID card number as person_id
        ("p1", _scan("p1", "unknown", t)),
        ("p1", _scan("p1", "v1", NOW + 3600)),
        ("p1", _scan("p1", "v1", NOW - 40 * 86400)),
    ])
    result = batch.apply(batch.parse(records), NOW)
    assert result.rows == [] and len(result.dead_letters) == 5
    assert result.dead_by_code == {"invalid_scan": 2, "unknown_venue": 1, "future": 1, "too_old": 1}
    letters = [orjson.loads(value) for _, value in result.dead_letters]
    assert "raw ID card number" in letters[1]["reason"] and "001099012345" not in letters[1]["raw"]
    assert [letter["offset"] for letter in letters] == [0, 1, 2, 3, 4]


def test_a_scan_off_its_persons_partition_is_rekeyed_not_processed() -> None:
    batch = _batch()
    home = partition_for("p1", PARTITIONS)
    record = Record("scans", (home + 1) % PARTITIONS, 0, None, _scan("p1", "v1", NOW - 3600))
    result = batch.apply(batch.parse([record]), NOW)
    assert result.rekeyed == [(b"p1", record.value)] and result.rows == [] and result.consumed == 0


def test_a_replayed_batch_writes_the_same_rows_with_the_same_versions() -> None:
    """After a crash the records come again from the committed offset, with state possibly ahead."""
    batch = _batch()
    t0 = NOW - 5 * 3600
    values = [("p1", _scan("p1", "v1", t0)), ("p1", _scan("p1", "v2", t0 + 1800)),
              ("p1", _scan("p1", "v2", t0 + 2400, "out"))]
    first = batch.apply(batch.parse(_records(values)), NOW)
    again = batch.apply(batch.parse(_records(values)), NOW)  # state already holds these offsets
    assert sorted(r[:9] for r in first.rows) == sorted(r[:9] for r in again.rows)
    assert again.rewound == 3 and again.id_duplicates == 0


def test_a_second_copy_of_a_scan_id_and_a_near_duplicate_are_counted_not_written() -> None:
    batch = _batch()
    t0 = NOW - 2 * 3600
    sid = str(uuid.uuid4())
    values = [("p1", _scan("p1", "v1", t0, scan_id=sid)), ("p1", _scan("p1", "v1", t0 + 60, scan_id=sid)),
              ("p1", _scan("p1", "v1", t0 + 300))]
    result = batch.apply(batch.parse(_records(values)), NOW)
    assert result.id_duplicates == 1 and result.window_duplicates == 1
    assert len({r[0] for r in result.rows if not r[8]}) == 1


def test_people_silent_past_the_horizon_are_forgotten() -> None:
    batch = _batch()
    old, recent = NOW - 80 * 3600, NOW - 3600
    batch.apply(batch.parse(_records([("p1", _scan("p1", "v1", old)), ("p2", _scan("p2", "v1", recent))])), NOW)
    expired = sum(batch.expire(p, NOW - 72 * 3600) for p in range(PARTITIONS))
    assert expired == 1
    assert batch.store.get(partition_for("p1", PARTITIONS), b"p1") is None
    assert batch.store.get(partition_for("p2", PARTITIONS), b"p2") is not None


def test_records_that_cannot_be_read_at_all_are_dead_lettered_not_a_stuck_batch() -> None:
    batch = _batch()
    home = partition_for("p1", PARTITIONS)
    records = [Record("scans", home, 0, b"p1", None), Record("scans", home, 1, None, b"[" * 5000 + b"]" * 5000),
               Record("scans", home, 2, None, b"\xff\xfe\x00garbage"),
               Record("scans", home, 3, b"p1", _scan("p1", "v1", NOW - 3600))]
    result = batch.apply(batch.parse(records), NOW)
    assert [orjson.loads(v)["offset"] for _, v in result.dead_letters] == [0, 1, 2]
    assert orjson.loads(result.dead_letters[0][1])["reason"] == "record without a value"
    assert len([r for r in result.rows if not r[8]]) == 1
