"""Hypothesis on the Kafka door (issue 13, item 5): generated records written to the real ``scans`` topic.

Whatever a Kafka client writes (valid scans, near misses, wrong JSON types, nested documents, bytes that
are no text, no value at all), the session's worker keeps consuming and committing: every record the
contract refuses lands in ``scans-dlq`` with a reason (found by the record's key, which the dead letter
keeps), and a valid scan written after them becomes a visit. Bounded: a few examples of a few records.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

from streams.config import StreamsSettings
from streams.processor import VisitRules
from streams.store import JSON, ChangelogStore
from streams.visit_batch import VisitBatch
from tests.integration.topics import from_start
from truyvet.auth import Role
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs
from truyvet.scan import parse_scan

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
INTS = st.integers(-(2**63), 2**63 - 1)  # what JSON encoders write
JUNK = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False),
                 st.lists(INTS, max_size=2), st.dictionaries(st.text(max_size=3), INTS, max_size=2),
                 st.text(max_size=12))
# Times well inside or well outside the accepted range: no verdict can change while the test runs.
TIMES = st.sampled_from([(NOW - timedelta(hours=1)).isoformat(),
                         (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         (NOW + timedelta(days=1)).isoformat(), (NOW - timedelta(days=40)).isoformat(),
                         "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-13-01T00:00:00Z",
                         "yesterday", (NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")])
IDS = st.one_of(st.sampled_from(["p1", "001099012345", "123456789", "a" * 65, "", "p 1", "１２３"]),
                st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True))
JSON_VALUES = st.recursive(st.none() | st.booleans() | INTS | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=12)


def _scans(venue: str) -> st.SearchStrategy[bytes | None]:
    fields = {"scan_id": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: u.hex), JUNK),
              "scanned_at": st.one_of(TIMES, JUNK),
              "direction": st.one_of(st.sampled_from(["in", "out", "IN"]), JUNK),
              "venue_id": st.one_of(st.just(venue), st.just("vunknown"), IDS, JUNK),
              "person_id": st.one_of(IDS, JUNK)}
    return st.one_of(st.fixed_dictionaries({}, optional=fields).map(orjson.dumps),
                     st.fixed_dictionaries(fields).map(orjson.dumps),
                     JSON_VALUES.map(orjson.dumps), st.binary(max_size=40), st.none())


def _kafka_verdict(venue: str) -> VisitBatch:
    store = ChangelogStore("person-scans", "unused", codec=JSON, bootstrap="unused")
    rules = VisitRules(stay_for=lambda _v: 3600, max_stay=12 * 3600, dedup_window=600, horizon=72 * 3600)
    return VisitBatch(rules=rules, store=store, known_venue={venue}.__contains__, partitions=8,
                      retention_seconds=28 * 86400)


def _refused(door: VisitBatch, value: bytes | None) -> bool:
    if value is None:
        return True
    try:
        parsed = parse_scan(value)
    except Exception:  # noqa: BLE001 - the worker dead-letters what it cannot read at all
        return True
    return bool(door.check(parsed, int(time.time()))[0])


@pytest.fixture(scope="module")
def door(services, token) -> dict[str, Any]:  # noqa: ANN001
    import httpx

    with httpx.Client(timeout=30) as http:
        r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                      json={"name": "Bến xe", "category": "bus_station", "ward_code": "01843"})
    venue = r.json()["venue_id"]
    s = services.settings
    producer = KafkaProducer(**client_kwargs(s), acks="all")
    admin = KafkaAdminClient(**client_kwargs(s))
    with from_start(s, s.topic(Topics.SCANS_DLQ)) as consumer:
        yield {"venue": venue, "producer": producer, "admin": admin, "consumer": consumer,
               "verdict": _kafka_verdict(venue), "group": StreamsSettings().group("scans"),
               "topic": s.topic(Topics.SCANS)}
    producer.close()
    admin.close()


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: no minutes of shrinking
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(records=st.data())
def test_the_worker_dead_letters_what_it_refuses_and_keeps_committing(door: dict[str, Any], db, records) -> None:  # noqa: ANN001
    values = records.draw(st.lists(_scans(door["venue"]), min_size=1, max_size=12))
    marker = uuid.uuid4().hex[:12]
    sentinel_id, person = str(uuid.uuid4()), f"s{marker}"
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    sentinel = orjson.dumps({"scan_id": sentinel_id, "scanned_at": at, "venue_id": door["venue"], "person_id": person})
    producer: KafkaProducer = door["producer"]
    futures = [producer.send(door["topic"], key=f"{marker}-{i}".encode(), value=v) for i, v in enumerate(values)]
    futures.append(producer.send(door["topic"], key=person.encode(), value=sentinel))
    written = [f.get(timeout=30) for f in futures]
    refused = {f"{marker}-{i}" for i, v in enumerate(values) if _refused(door["verdict"], v)}

    letters: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    visit: list[Any] = []
    while (len(letters) < len(refused) or not visit) and time.monotonic() < deadline:
        for batch in door["consumer"].poll(timeout_ms=300).values():
            for rec in batch:
                if rec.key and rec.key.decode(errors="replace").startswith(marker):
                    letters[rec.key.decode()] = orjson.loads(rec.value)
        visit = visit or db.execute("SELECT visit_id FROM visits WHERE person_id = %(p)s", {"p": person})
    assert set(letters) == refused, (values, sorted(letters), sorted(refused))
    assert all(letter["reason"] and letter["error_code"] for letter in letters.values())
    assert [row[0] for row in visit] == ["i" + sentinel_id], "the worker stopped before the valid scan"

    # ...and committed past every record written (no poison pill left uncommitted).
    ends: dict[TopicPartition, int] = {}
    for meta in written:
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)

    def committed() -> bool:
        got = door["admin"].list_group_offsets({door["group"]: None}).get(door["group"], {})
        return all(tp in got and got[tp].offset >= end for tp, end in ends.items())

    while not committed() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert committed(), "the worker's committed offsets did not pass the records"
