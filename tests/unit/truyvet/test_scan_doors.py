"""Both doors accept and refuse the same scans (issue 11): HTTP ingest and a record produced straight to Kafka.

The HTTP door is ``ingest.scans.ScanValidator`` (the item as a device posts it with ``venue_id`` and
``person_id``); the Kafka door is ``truyvet.scan.parse_scan`` followed by the worker's checks
(``streams.visit_batch.VisitBatch.check``: future, retention, known venue). For any item made of the
contract's fields, with values drawn from valid ones, near misses (raw ID numbers, year 1 and 9999 with
offsets, odd spellings), printed cards (valid, edited, forged, a venue's code; issue 15) and wrong JSON
types, both give the same verdict, and on acceptance the same
scan (person, venue, time to the second, direction, scan id).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.qr import KeyRing, QrVerifier
from ingest.scans import Accepted, ScanValidator
from streams.processor import VisitRules
from streams.store import JSON, ChangelogStore
from streams.visit_batch import VisitBatch
from truyvet.cards import PublicKeys
from truyvet.events import Category, Venue
from truyvet.scan import ParsedScan, parse_scan

NOW = datetime.now(UTC).replace(microsecond=0)
VENUE = Venue(
    venue_id="vknown",
    name="Chợ",
    category=Category.market_shop,
    ward_code="01840",
    created_at=NOW - timedelta(days=400),
)
RETENTION = timedelta(days=28)

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.lists(st.integers(-1000, 1000), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(-1000, 1000), max_size=2),
    st.text(max_size=12),
)
IDS = st.one_of(
    st.sampled_from(
        [
            "p1",
            "P_a-9",
            "a" * 64,
            "a" * 65,
            "",
            "001099012345",
            "123456789",
            "0010990123456",
            "１２３",
            "p 1",
            "p\n",
            "ép",
        ]
    ),
    st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True),
)
TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.sampled_from([UTC, None])
    ).map(lambda d: d.isoformat()),
    st.integers(-36, 36).map(lambda h: (NOW + timedelta(hours=h)).isoformat()),
    st.integers(-800, 800).map(lambda m: (NOW + timedelta(minutes=m)).astimezone().isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "",
            (NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S+00:00"),
            (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.123456+07:00"),
            (NOW - timedelta(days=29)).isoformat(),
            (NOW + timedelta(minutes=6)).isoformat(),
        ]
    ),
)
SCAN_IDS = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.sampled_from(["not-a-uuid", ""]),
)
FIELDS = {
    "scan_id": st.one_of(SCAN_IDS, JUNK),
    "scanned_at": st.one_of(TIMES, JUNK),
    "direction": st.one_of(st.sampled_from(["in", "out", "IN", "sideways"]), JUNK),
    "venue_id": st.one_of(st.sampled_from(["vknown", "vunknown"]), IDS, JUNK),
    "person_id": st.one_of(IDS, JUNK),
}
ITEMS = st.fixed_dictionaries({}, optional=FIELDS)


RING = KeyRing(Path(__import__("tempfile").mkdtemp()) / "k")
RING.load()
CARDS = PublicKeys(RING.directory)  # the Kafka door's view of the same keys (issue 15: person_qr)
_CARD = RING.sign_card("cperson1")
_PARTS = _CARD.split(".")
CARD_TEXTS = st.sampled_from([_CARD, ".".join([*_PARTS[:2], _PARTS[2][:-2] + "xx", _PARTS[3]]), "TP1.x.y.z",
                              RING.sign("vknown"), RING.sign_card("001099012345"), ""])
FIELDS["person_qr"] = st.one_of(CARD_TEXTS, JUNK)
ITEMS = st.fixed_dictionaries({}, optional=FIELDS)


def _http_door(tmp: Path) -> ScanValidator:
    return ScanValidator(
        pseudonym_key=b"k",
        retention=RETENTION,
        max_future=timedelta(minutes=5),
        venue_lookup={"vknown": VENUE}.get,
        verify_venue_qr=QrVerifier(RING),
        verify_person_card=RING.verify_card,
    )


def _kafka_door() -> VisitBatch:
    store = ChangelogStore("person-scans", "unused", codec=JSON, bootstrap="unused")
    rules = VisitRules(stay_for=lambda _v: 3600, max_stay=12 * 3600, dedup_window=600, horizon=72 * 3600)
    return VisitBatch(
        rules=rules,
        store=store,
        known_venue={"vknown"}.__contains__,
        partitions=8,
        retention_seconds=int(RETENTION.total_seconds()),
    )


HTTP = _http_door(Path(__import__("tempfile").mkdtemp()))
KAFKA = _kafka_door()


@settings(max_examples=1000, deadline=None)  # about 14 ms an example, mostly generating it
@given(ITEMS)
def test_http_and_kafka_doors_give_the_same_verdict(item: dict[str, object]) -> None:
    now = datetime.now(UTC)
    http = HTTP.validate(0, item, now=now, source="http")
    parsed = parse_scan(orjson.dumps(item), CARDS.verify)
    kafka_reason = KAFKA.check(parsed, int(now.timestamp()))[0]
    assert isinstance(http, Accepted) == (not kafka_reason), (item, http, parsed, kafka_reason)
    if isinstance(http, Accepted):
        assert isinstance(parsed, ParsedScan)
        event = http.event
        assert (
            event.person_id,
            event.venue_id,
            int(event.scanned_at.timestamp()),
            event.direction.value,
            str(event.scan_id),
        ) == (parsed.person_id, parsed.scan.venue_id, parsed.scan.t, parsed.scan.direction, parsed.scan.scan_id)


def test_the_cases_that_once_split_the_doors() -> None:
    """A raw ID number got through the Kafka door; year 1 with an offset crashed both (issue 13)."""
    now = datetime.now(UTC)
    base = {"scan_id": str(uuid.uuid4()), "scanned_at": (now - timedelta(hours=1)).isoformat(), "venue_id": "vknown"}
    for item in (
        {**base, "person_id": "001099012345"},
        {**base, "person_id": "p1", "scanned_at": "0001-01-01T00:00:00+01:00"},
        {**base, "person_id": "p1", "direction": []},
        {**base, "person_id": "p1", "direction": {}},
    ):
        assert not isinstance(HTTP.validate(0, item, now=now, source="http"), Accepted)
        assert KAFKA.check(parse_scan(orjson.dumps(item)), int(now.timestamp()))[0]
