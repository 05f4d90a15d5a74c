"""Dead letters never carry an ID card number or a chip card's QR text, whatever a Kafka client sent."""

from __future__ import annotations

import orjson

from truyvet.events import DeadLetter, redact_identity

CARD = "001234567890||Nguyễn Văn An|01011990|Nam|Tổ 5, Phường Đức Xuân, Bắc Kạn|01012021"


def test_raw_id_numbers_and_card_payloads_are_removed_from_dead_letters() -> None:
    raw = orjson.dumps({"scan_id": "0b1c2d3e-0000-4000-8000-123456789012", "person_id": "001234567890",
                        "venue_id": "v1", "cccd_qr": CARD, "note": "cmnd 123456789 at gate"}).decode()
    letter = DeadLetter(reason="person_id: looks like a raw ID card number", error_code="invalid_scan", raw=raw)
    assert "001234567890" not in letter.raw and "123456789 " not in letter.raw
    assert "Nguyễn" not in letter.raw and '"cccd_qr":"[removed]"' in letter.raw
    assert "0b1c2d3e-0000-4000-8000-123456789012" in letter.raw, "a scan id's digits are not an ID number"
    assert orjson.loads(letter.raw)["venue_id"] == "v1"


def test_card_text_alone_loses_its_number() -> None:
    assert redact_identity(CARD).startswith("[id number removed]||")
    assert redact_identity("scanned_at 2026-11-26T10:00:00+07:00") == "scanned_at 2026-11-26T10:00:00+07:00"
