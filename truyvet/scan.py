"""Parsing a raw record of the ``scans`` topic into what the worker keeps, fast: the one Kafka-side
validation of a scan, the same rules as the HTTP door (both end in :class:`truyvet.events.ScanEvent`).
A record may carry a printed card's ``person_qr`` instead of ``person_id`` (truyvet/cards.py): its
signature is checked and it becomes the card's person id, or the record is refused with the reason.

The contract's shape is :class:`truyvet.events.ScanEvent`. Records in the common canonical form
(what HTTP ingest writes: lowercase hyphenated UUID, RFC 3339 time with an offset, ids of the allowed
characters) are read with orjson and a few regular expressions; anything else goes through the
pydantic model, which accepts the other valid spellings and words the reason for a rejection. The
fast path accepts nothing the model would refuse (``tests/unit/truyvet/test_scan.py``; a property test holds both doors
equal: ``tests/unit/truyvet/test_scan_doors.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple, TypeGuard

import orjson
from pydantic import ValidationError

from truyvet.events import ScanEvent, is_raw_id_number

IN = "in"
OUT = "out"


class Scan(NamedTuple):
    """A scan as the worker keeps it in state (compact: the person's state stores lists of these)."""

    t: int
    direction: str
    venue_id: str
    scan_id: str

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.t, 0 if self.direction == IN else 1, self.scan_id)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KNOWN = frozenset({"scan_id", "scanned_at", "direction", "venue_id", "person_id", "source", "received_at"})


class ParsedScan(NamedTuple):
    person_id: str
    scan: Scan


class Rejected(NamedTuple):
    reason: str


def parse_scan(raw: bytes, person_card: Callable[[str], str] | None = None) -> ParsedScan | Rejected:
    """The scan in ``raw``, or why it is not one (first validation error, as "field: message").

    :param person_card: a printed card's payload (``person_qr``) -> its person id, raising ValueError with
        the reason (truyvet/cards.py); without it a record carrying ``person_qr`` is refused.
    """
    fast = _fast(raw)
    if fast is not None:
        return fast
    card = _with_card(raw, person_card)
    if isinstance(card, Rejected):
        return card
    try:
        event = ScanEvent.from_json(raw if card is None else orjson.dumps(card))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return Rejected(f"{where}: {first['msg']}" if where else first["msg"])
    return ParsedScan(event.person_id, Scan(int(event.scanned_at.timestamp()), event.direction.value,
                                            event.venue_id, str(event.scan_id)))


def _with_card(raw: bytes, person_card: Callable[[str], str] | None) -> dict[str, object] | Rejected | None:
    """A record with ``person_qr``: its fields with the card's person id in place of the card (checked
    like the HTTP door: exactly one person field, signature); None for a record without one."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or doc.get("person_qr") is None:  # null is absent, as at the HTTP door
        return None
    if "person_id" in doc or "cccd_qr" in doc:
        return Rejected("give exactly one of person_id, cccd_qr or person_qr")
    text = doc.pop("person_qr")
    if type(text) is not str:
        return Rejected("person_qr: must be the card's text")
    if person_card is None:
        return Rejected("person_qr: cards are not checked at this door")
    try:
        doc["person_id"] = person_card(text)
    except ValueError as exc:
        return Rejected(f"person_qr: {exc}")
    return doc


def utc_epoch(value: object) -> int | None:
    """Epoch seconds of a time in the canonical form (RFC 3339 with ``T`` and an offset); None for anything
    else, which the model then accepts or refuses with its reason (both doors use this)."""
    if type(value) is not str or not _TIME.fullmatch(value):
        return None
    try:
        return int(datetime.fromisoformat(value).astimezone(UTC).timestamp())
    except (ValueError, OverflowError):  # year 1 / 9999 with an offset has no UTC time: the model says why
        return None


def canonical_scan_id(value: object) -> str | None:
    """A scan_id already in canonical form (lowercase hyphenated UUID), else None (the model decides)."""
    return value if type(value) is str and _UUID.fullmatch(value) else None


def is_venue_id(value: object) -> TypeGuard[str]:
    return type(value) is str and _ID.fullmatch(value) is not None


def is_person_id(value: object) -> TypeGuard[str]:
    """A pseudonymous person id: the id pattern, and not a raw ID card number."""
    return type(value) is str and _ID.fullmatch(value) is not None and not is_raw_id_number(value)


def _fast(raw: bytes) -> ParsedScan | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or not _KNOWN.issuperset(doc):
        return None
    scan_id, venue_id, person_id = canonical_scan_id(doc.get("scan_id")), doc.get("venue_id"), doc.get("person_id")
    direction = doc.get("direction", IN)
    if (scan_id is None or not is_venue_id(venue_id) or not is_person_id(person_id)
            or direction not in (IN, OUT) or type(doc.get("source", "")) is not str):
        return None
    t = utc_epoch(doc.get("scanned_at"))
    if t is None:
        return None
    received = doc.get("received_at")
    if received is not None and utc_epoch(received) is None:
        return None
    return ParsedScan(person_id, Scan(t, direction, venue_id, scan_id))
