"""Dead letters, rejection reasons and log records never carry an ID card number or a chip card's QR text,
whatever a client sent and wherever it put it (issue 13, item 8): scrubbed by the shape of values."""

from __future__ import annotations

import io
import logging

import orjson

from truyvet.events import DeadLetter, redact_identity
from truyvet.redact import install_log_scrubber, scrub

CARD = "001234567890||Nguyễn Văn An|01011990|Nam|Tổ 5, Phường Đức Xuân, Bắc Kạn|01012021"
WIDE = "００１２３４５６７８９０｜｜Nguyễn Văn An｜01011990｜Nam｜Tổ 5｜01012021"
SECRETS = ("001234567890", "Nguyễn Văn An", "01011990", "Tổ 5")


def _clean(text: str) -> bool:
    return not any(s in text for s in SECRETS)


def test_raw_id_numbers_and_card_payloads_are_removed_from_dead_letters() -> None:
    raw = orjson.dumps({"scan_id": "0b1c2d3e-0000-4000-8000-123456789012", "person_id": "001234567890",
                        "venue_id": "v1", "cccd_qr": CARD, "note": "cmnd 123456789 at gate"}).decode()
    letter = DeadLetter(reason="person_id: looks like a raw ID card number", error_code="invalid_scan", raw=raw)
    assert "001234567890" not in letter.raw and "123456789 " not in letter.raw
    assert _clean(letter.raw) and '"cccd_qr":"[removed]"' in letter.raw
    assert "0b1c2d3e-0000-4000-8000-123456789012" in letter.raw, "a scan id's digits are not an ID number"
    assert orjson.loads(letter.raw)["venue_id"] == "v1"


def test_card_text_under_any_key_in_any_form_is_removed() -> None:
    odd = [
        {"ghi_chu": CARD},  # under another key
        {CARD: 1},  # as a key
        {"a": {"b": [1, {"c": CARD}]}},  # nested
        {"x": WIDE},  # full-width digits and bars
        {"n": 1234567890 * 100 + 12},  # an ID number as a JSON number (001234567890 without its zeros: 9+ digits)
        {"p": "id 001234567890."},
    ]
    for doc in odd:
        letter = DeadLetter(reason="x", error_code="invalid_scan", raw=orjson.dumps(doc).decode())
        assert _clean(letter.raw) and "123456789012" not in letter.raw, (doc, letter.raw)
    escaped = '{"k": "\\u0030\\u00301234567890||Nguy\\u1ec5n V\\u0103n An|01011990|Nam|T\\u1ed5 5|01012021"}'
    assert _clean(redact_identity(escaped)) and "\\u" not in redact_identity(escaped)
    text = f"not json\n{CARD}\n"
    assert _clean(DeadLetter(reason=f"bad {CARD}", error_code="x", raw=text).model_dump_json())


def test_what_is_not_identity_is_kept() -> None:
    for text in ("scanned_at 2026-11-26T10:00:00+07:00", "venue_id: unknown venue (not registered)",
                 "p_1234567890123", "a|b", "offset 12345678", "epoch 1764662400"):
        assert scrub(text) == text


def test_every_log_record_is_scrubbed_message_arguments_and_traceback() -> None:
    install_log_scrubber()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.redaction")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("scan from %s rejected", CARD)
        log.warning(f"odd key {WIDE} seen")  # noqa: G004 - an f-string, as careless code would write
        log.info("payload %s", {"whatever": CARD, "id": "001234567890"})
        try:
            raise ValueError(f"cannot parse {CARD}")
        except ValueError:
            log.exception("unreadable record %d", 7)
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert _clean(text), text
    assert "unreadable record 7" in text and "ValueError: cannot parse [card text removed]" in text
