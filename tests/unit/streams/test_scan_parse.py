"""The worker's fast scan parser agrees with the contract's model (truyvet.events.ScanEvent)."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from truyvet import scan as intake
from truyvet.events import ScanEvent
from truyvet.scan import ParsedScan, Rejected, parse_scan

GOOD = {"scan_id": "5f0c3a52-6f5e-4a8b-9d3e-2c1f0a9b8c7d", "scanned_at": "2021-10-14T08:00:00+07:00",
        "direction": "out", "venue_id": "v-1", "person_id": "p_1"}

CASES = [
    GOOD,
    {**GOOD, "direction": "in"},
    {k: v for k, v in GOOD.items() if k != "direction"},
    {**GOOD, "scanned_at": "2021-10-14T01:00:00Z"},
    {**GOOD, "scanned_at": "2021-10-14T01:00:00.999999Z"},
    {**GOOD, "scanned_at": "2021-10-14T01:00:00"},  # no offset
    {**GOOD, "scanned_at": "2021-02-30T01:00:00Z"},  # no such day
    {**GOOD, "scanned_at": 1634173200},
    {**GOOD, "scan_id": "5F0C3A52-6F5E-4A8B-9D3E-2C1F0A9B8C7D"},
    {**GOOD, "scan_id": "5f0c3a526f5e4a8b9d3e2c1f0a9b8c7d"},
    {**GOOD, "scan_id": "not-a-uuid"},
    {**GOOD, "direction": "sideways"},
    {**GOOD, "venue_id": ""},
    {**GOOD, "venue_id": "x" * 65},
    {**GOOD, "person_id": "với dấu"},
    {**GOOD, "person_id": 123},
    {**GOOD, "source": "http", "received_at": "2021-10-14T01:00:05+00:00"},
    {**GOOD, "received_at": "yesterday"},
    {**GOOD, "extra": "ignored"},
    {k: v for k, v in GOOD.items() if k != "venue_id"},
]


@pytest.mark.parametrize("doc", CASES)
def test_parse_scan_agrees_with_the_model(doc: dict) -> None:
    raw = orjson.dumps(doc)
    got = parse_scan(raw)
    try:
        event = ScanEvent.from_json(raw)
    except ValidationError:
        assert isinstance(got, Rejected)
        assert intake._fast(raw) is None
        return
    assert isinstance(got, ParsedScan)
    assert got.person_id == event.person_id
    assert got.scan == (int(event.scanned_at.timestamp()), event.direction.value, event.venue_id,
                        str(event.scan_id))


def test_the_canonical_form_takes_the_fast_path() -> None:
    assert intake._fast(orjson.dumps(GOOD)) is not None
    assert intake._fast(ScanEvent.from_json(orjson.dumps(GOOD)).to_json()) is not None


def test_rejection_names_the_field() -> None:
    got = parse_scan(orjson.dumps({**GOOD, "direction": "sideways"}))
    assert isinstance(got, Rejected) and got.reason.startswith("direction:")
    assert isinstance(parse_scan(b"{not json"), Rejected)
