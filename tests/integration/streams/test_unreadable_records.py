"""Records on ``scans`` the worker cannot read at all (no value, nesting past any parser's limit, bytes that
are no text) are dead-lettered with their reason, and the scans after them still become visits."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.streams.harness import Pipeline, as_map, now_epoch
from tests.integration.topics import all_records
from tests.unit.streams.reference import RefScan
from tests.unit.streams.scenarios import VenueSpec
from truyvet.events import Topics
from truyvet.kafka_clients import client_kwargs

pytestmark = pytest.mark.integration


def _dead_letters(p: Pipeline) -> list[dict[str, object]]:
    return [orjson.loads(m.value) for m in all_records(p.settings, p.settings.topic(Topics.SCANS_DLQ))]


def test_unreadable_records_are_dead_lettered_and_the_partition_moves_on(pipeline: Callable[..., Pipeline]) -> None:
    p = pipeline()
    p.create([VenueSpec("v1", "food_drink", 0)])
    p.start_worker()
    producer = KafkaProducer(**client_kwargs(p.settings), acks="all")
    try:
        for value in (None, b"[" * 5000 + b"]" * 5000, b"\xff\xfe\x00 not text"):
            producer.send(p.settings.topic(Topics.SCANS), key=b"p1", value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    t = now_epoch() - 3600
    p.produce([RefScan("7c9e6679-7425-40de-944b-e07fc1f90ae7", "p1", "v1", t, "in")])
    p.wait_caught_up(timeout=60)
    assert [v.visit_id for v in as_map(p.visits()).values()] == ["i7c9e6679-7425-40de-944b-e07fc1f90ae7"]
    reasons = sorted(str(d["reason"]) for d in _dead_letters(p))
    assert len(reasons) == 3 and "record without a value" in reasons, reasons
