"""Per-item validation of incoming scans: every item gets either a ScanEvent or a clear reason."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ingest.pseudonym import CccdCard, CccdError, parse_cccd, pseudonym
from truyvet.events import Direction, PersonId, ScanEvent, UtcSecond, Venue, VenueId
from truyvet.scan import canonical_scan_id, is_person_id, is_venue_id, utc_epoch


class ScanIn(BaseModel):
    """A scan as a device or phone sends it (docs/api.md): exactly one venue and one person field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan_id: uuid.UUID
    scanned_at: UtcSecond
    direction: Direction = Direction.in_
    venue_qr: str | None = None
    venue_id: VenueId | None = None
    person_id: PersonId | None = None
    cccd_qr: str | None = None
    person_qr: str | None = None  # a printed personal card's payload (truyvet/cards.py)

    @model_validator(mode="after")
    def _one_of_each(self) -> ScanIn:
        if (self.venue_qr is None) == (self.venue_id is None):
            raise ValueError("give exactly one of venue_qr or venue_id")
        if self.person_qr is not None:
            if self.person_id is not None or self.cccd_qr is not None:
                raise ValueError("give exactly one of person_id, cccd_qr or person_qr")
        elif (self.person_id is None) == (self.cccd_qr is None):
            raise ValueError("give exactly one of person_id or cccd_qr")
        return self


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid scan, ready for Kafka: ``value`` is the :class:`ScanEvent` JSON (what ``to_json`` gives),
    ``card`` the parsed CCCD (for the restricted details table) if one was sent."""

    scan_id: str
    person_id: str
    value: bytes
    card: CccdCard | None = None

    @property
    def event(self) -> ScanEvent:
        return ScanEvent.from_json(self.value)


@dataclass(frozen=True, slots=True)
class _Fields:
    scan_id: str
    scanned_at: datetime
    direction: str
    venue_qr: str | None
    venue_id: str | None
    person_id: str | None
    cccd_qr: str | None
    person_qr: str | None = None


_KEYS = frozenset(ScanIn.model_fields)


def _fast_fields(raw: dict[str, Any]) -> _Fields | None:
    """The common, well-formed item checked without pydantic (a third of the cost at 20,000 scans/s), with
    the Kafka door's own fast checks (truyvet.scan); ``None`` for anything unusual, which then goes through
    :class:`ScanIn` for its exact reason (tests/unit/truyvet/test_scan_doors.py: both doors agree)."""
    if not raw.keys() <= _KEYS or "person_qr" in raw:
        return None
    scan_id, direction = canonical_scan_id(raw.get("scan_id")), raw.get("direction", "in")
    venue_qr, venue_id = raw.get("venue_qr"), raw.get("venue_id")
    person_id, cccd_qr = raw.get("person_id"), raw.get("cccd_qr")
    if scan_id is None or direction not in ("in", "out"):
        return None
    if (venue_qr is None) == (venue_id is None) or (person_id is None) == (cccd_qr is None):
        return None
    if venue_qr is not None and not isinstance(venue_qr, str):
        return None
    if venue_id is not None and not is_venue_id(venue_id):
        return None
    if person_id is not None and not is_person_id(person_id):
        return None
    if cccd_qr is not None and not isinstance(cccd_qr, str):
        return None
    t = utc_epoch(raw.get("scanned_at"))
    if t is None:
        return None
    return _Fields(scan_id, datetime.fromtimestamp(t, UTC), direction, venue_qr, venue_id, person_id, cccd_qr)


def _slow_fields(item: ScanIn) -> _Fields:
    return _Fields(str(item.scan_id), item.scanned_at, item.direction.value, item.venue_qr, item.venue_id,
                   item.person_id, item.cccd_qr, item.person_qr)


def _rfc3339(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a UTC time without microseconds (isoformat is C; strftime is slow)."""
    return value.isoformat()[:19] + "Z"


@dataclass(frozen=True)
class Rejected:
    index: int
    scan_id: str | None
    error: str


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class ScanValidator:
    """Turns raw items into ScanEvents. Raw CCCD text is replaced by a pseudonym here and dropped.

    :param venue_lookup: venue_id -> Venue or None (unknown venue).
    :param verify_venue_qr: QR text -> venue_id, raising ValueError with the reason when invalid.
    :param verify_person_card: a printed card's payload -> person id, raising ValueError with the reason
        (truyvet/cards.py); None refuses ``person_qr``.
    """

    def __init__(
        self,
        *,
        pseudonym_key: bytes,
        retention: timedelta,
        max_future: timedelta,
        venue_lookup: Callable[[str], Venue | None],
        verify_venue_qr: Callable[[str, datetime], str],
        verify_person_card: Callable[[str], str] | None = None,
    ) -> None:
        self._verify_card = verify_person_card
        self._key = pseudonym_key
        self._retention = retention
        self._max_future = max_future
        self._venue = venue_lookup
        self._verify_qr = verify_venue_qr
        self._now: datetime | None = None
        self._now_text = ""

    def validate(self, index: int, raw: Any, *, now: datetime, source: str) -> Accepted | Rejected:
        if not isinstance(raw, dict):
            return Rejected(index, None, "scan must be a JSON object")
        given = raw.get("scan_id")
        scan_id = str(given) if given is not None else None
        item = _fast_fields(raw)
        if item is None:
            try:
                item = _slow_fields(ScanIn.model_validate(raw))
            except ValidationError as exc:  # the reason names fields only, never echoes input (CCCD)
                return Rejected(index, scan_id, _describe(exc))
        if item.scanned_at > now + self._max_future:
            return Rejected(index, scan_id, "scanned_at: more than 5 minutes in the future")
        if item.scanned_at < now - self._retention:
            return Rejected(index, scan_id, "scanned_at: older than the retention period")
        if item.venue_qr is not None:
            try:
                venue_id = self._verify_qr(item.venue_qr, item.scanned_at)
            except ValueError as exc:
                return Rejected(index, scan_id, f"venue_qr: {exc}")
        else:
            venue_id = item.venue_id or ""
        venue = self._venue(venue_id)
        if venue is None:
            # The id is not echoed: a device that puts an ID card number there must not see it logged or kept.
            return Rejected(index, scan_id, "venue_id: unknown venue (not registered)")
        if venue.valid_from and item.scanned_at < venue.valid_from:
            return Rejected(index, scan_id, "scanned_at: before the venue's validity window")
        if venue.valid_until and item.scanned_at > venue.valid_until:
            return Rejected(index, scan_id, "scanned_at: after the venue's validity window")
        if item.person_qr is not None:
            if self._verify_card is None:
                return Rejected(index, scan_id, "person_qr: cards are not checked at this door")
            try:
                person_from_card = self._verify_card(item.person_qr)
            except ValueError as exc:
                return Rejected(index, scan_id, f"person_qr: {exc}")
        else:
            person_from_card = None
        if person_from_card is not None:
            card, person = None, person_from_card
        elif item.cccd_qr is not None:
            try:
                card = parse_cccd(item.cccd_qr)
            except CccdError as exc:
                return Rejected(index, scan_id, str(exc))
            person = pseudonym(self._key, card.id_number)
        else:
            card = None
            person = item.person_id or ""  # a raw ID card number was refused by PersonId already
        # Every field is checked by now: the ScanEvent JSON is written directly
        # (tests/unit/ingest/test_scans.py holds it equal to ScanEvent(...).to_json()).
        if now is not self._now:
            self._now, self._now_text = now, _rfc3339(now)
        value = orjson.dumps({"scan_id": item.scan_id, "scanned_at": _rfc3339(item.scanned_at),
                              "direction": item.direction, "venue_id": venue_id, "person_id": person,
                              "source": source, "received_at": self._now_text})
        return Accepted(item.scan_id, person, value, card)
