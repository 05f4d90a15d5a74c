"""Per-item scan validation: every bad item gets a reason naming the field, never the raw CCCD."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from ingest.pseudonym import pseudonym
from ingest.qr import KeyRing, QrVerifier
from ingest.scans import Accepted, Rejected, ScanValidator
from truyvet.events import Category, ScanEvent, Venue

NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
KEY = b"unit-test-key"
ID = "001099012345"
CCCD = f"{ID}|123456789|Nguyễn Văn An|01021990|Nam|Tổ 5, Phường Đức Xuân, Thành phố Bắc Kạn, Bắc Kạn|15082021"
VENUE = Venue(venue_id="vknown", name="Chợ", category=Category.market_shop, ward_code="01840", created_at=NOW)


@pytest.fixture()
def validator(tmp_path: Path) -> tuple[ScanValidator, KeyRing]:
    ring = KeyRing(tmp_path / "k")
    ring.load()
    v = ScanValidator(pseudonym_key=KEY, retention=timedelta(days=28), max_future=timedelta(minutes=5),
                      venue_lookup={"vknown": VENUE}.get, verify_venue_qr=QrVerifier(ring))
    return v, ring


def scan(**kw: object) -> dict[str, object]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": (NOW - timedelta(hours=1)).isoformat(),
            "venue_id": "vknown", "person_id": "p1", **kw}


def test_cccd_becomes_a_pseudonym_and_details(validator: tuple[ScanValidator, KeyRing]) -> None:
    raw = scan(person_id=None, cccd_qr=CCCD)
    del raw["person_id"]
    result = validator[0].validate(0, raw, now=NOW, source="http")
    assert isinstance(result, Accepted)
    assert result.event.person_id == pseudonym(KEY, ID)
    assert ID not in result.event.to_json().decode()
    assert result.card is not None and result.card.full_name == "Nguyễn Văn An"
    assert ID not in repr(result.card)


def test_signed_venue_qr_is_accepted(validator: tuple[ScanValidator, KeyRing]) -> None:
    v, ring = validator
    raw = scan(venue_qr=ring.sign("vknown"))
    del raw["venue_id"]
    result = v.validate(0, raw, now=NOW, source="http")
    assert isinstance(result, Accepted) and result.event.venue_id == "vknown"


@pytest.mark.parametrize("change, reason", [
    ({"scan_id": 42}, "scan_id"),
    ({"scanned_at": "yesterday"}, "scanned_at"),
    ({"scanned_at": "2026-11-26T06:00:00"}, "offset"),
    ({"direction": "sideways"}, "direction"),
    ({"venue_id": "vnope"}, "unknown venue"),
    ({"scanned_at": (NOW + timedelta(minutes=6)).isoformat()}, "future"),
    ({"scanned_at": (NOW - timedelta(days=29)).isoformat()}, "older than the retention"),
    ({"person_id": "bad id!"}, "person_id"),
    ({"person_id": ID}, "raw ID card number"),
    ({"person_id": None, "cccd_qr": f"{ID}|only|three"}, "7 fields"),
    ({"person_id": None, "cccd_qr": f"{ID}||Nguyễn Văn An|31021990|Nam|Bắc Kạn|15082021"}, "date of birth"),
    ({"venue_id": None, "venue_qr": "TV1.kffff.e30.AAAA"}, "venue_qr: unknown signing key"),
    ({"extra": 1}, "extra"),
])
def test_each_bad_item_has_its_reason(validator: tuple[ScanValidator, KeyRing], change: dict[str, object],
                                      reason: str) -> None:
    raw = {k: v for k, v in {**scan(), **change}.items() if v is not None}
    result = validator[0].validate(3, raw, now=NOW, source="batch")
    assert isinstance(result, Rejected), result
    assert result.index == 3
    assert reason in result.error
    assert ID not in result.error


def test_non_object_item_is_rejected(validator: tuple[ScanValidator, KeyRing]) -> None:
    result = validator[0].validate(7, [1, 2], now=NOW, source="batch")
    assert isinstance(result, Rejected) and result.error == "scan must be a JSON object"


@pytest.mark.parametrize("item", [
    {"direction": "out"},
    {"scanned_at": "2026-11-26T13:05:09.123456+07:00"},  # offset and fractions: UTC, to the second
    {"scan_id": "A1B2C3D4-0000-4000-8000-00000000000F"},  # upper case: canonical lower case
    {"scan_id": "a1b2c3d4000040008000000000000000"},  # no hyphens: slow path, same answer
    {"scanned_at": int(NOW.timestamp()) - 3600},  # not RFC 3339: slow path, pydantic takes it as before
])
def test_kafka_json_equals_the_scan_event_json(validator: tuple[ScanValidator, KeyRing],
                                               item: dict[str, object]) -> None:
    from ingest.scans import ScanIn

    raw = {**scan(), **item}
    result = validator[0].validate(0, raw, now=NOW, source="batch")
    assert isinstance(result, Accepted), result
    parsed = ScanIn.model_validate(raw)
    expected = ScanEvent(scan_id=parsed.scan_id, scanned_at=parsed.scanned_at, direction=parsed.direction,
                         venue_id="vknown", person_id="p1", source="batch", received_at=NOW)
    assert orjson.loads(result.value) == orjson.loads(expected.to_json())
    assert result.event == expected and result.scan_id == str(parsed.scan_id)
