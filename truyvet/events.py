"""The one typed definition of each event the services exchange over Kafka.

Everyone who produces or consumes a topic imports these models; nobody re-declares the fields.
Times are timezone-aware UTC ``datetime`` values truncated to the second (the contract compares
to the second).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter


class Category(StrEnum):
    """Venue categories of the origin letter (docs/api.md)."""

    office = "office"
    factory = "factory"
    food_drink = "food_drink"
    bar = "bar"
    karaoke = "karaoke"
    massage_beauty = "massage_beauty"
    gym = "gym"
    meeting = "meeting"
    health_facility = "health_facility"
    school = "school"
    bus_station = "bus_station"
    public_transport = "public_transport"
    mall_supermarket = "mall_supermarket"
    market_shop = "market_shop"
    wedding = "wedding"
    funeral = "funeral"
    tourist_site = "tourist_site"
    entertainment = "entertainment"
    spiritual_site = "spiritual_site"


class Direction(StrEnum):
    in_ = "in"
    out = "out"


class Topics:
    """Logical topic names; :meth:`truyvet.settings.CommonSettings.topic` adds the prefix."""

    SCANS = "scans"  # public intake: HTTP ingest and any Kafka client write here
    SCANS_DLQ = "scans-dlq"  # rejected scans with their reason
    VENUES = "venues"  # compacted: venue_id -> Venue
    ALERTS = "alerts"
    ALERTS_DLQ = "alerts-dlq"  # alerts not delivered within the retry budget
    EXPOSURE_MATCHING = "exposure-matching"  # keyed by venue: exposure windows and visit notices (alerts)
    TRACED = "traced-persons"  # compacted, keyed by case|person: whose later visits become exposure windows


def _utc_second(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("time needs an offset (RFC 3339)")
    try:
        return value.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # year 1 or 9999 with an offset: no UTC time exists
        raise ValueError("time out of range") from None


UtcSecond = Annotated[datetime, AfterValidator(_utc_second)]
def is_raw_id_number(value: str) -> bool:
    """9 or 12 ASCII digits alone: an old CMND / CCCD number sent by mistake, which must not travel on."""
    return len(value) in (9, 12) and value.isascii() and value.isdigit()


def _not_a_raw_id_number(value: str) -> str:
    if is_raw_id_number(value):
        raise ValueError("looks like a raw ID card number; send cccd_qr through the ingest API")
    return value


PersonId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"), AfterValidator(_not_a_raw_id_number)]
VenueId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ScanEvent(BaseModel):
    """A scan as it travels on the ``scans`` topics: pseudonymous person, known venue id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    scan_id: uuid.UUID
    scanned_at: UtcSecond
    direction: Direction = Direction.in_
    venue_id: VenueId
    person_id: PersonId
    source: str = "kafka"  # http | batch | kafka
    received_at: UtcSecond | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> ScanEvent:
        return cls.model_validate_json(raw)


class Venue(BaseModel):
    """A registered venue, as published on the compacted ``venues`` topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    venue_id: VenueId
    name: str
    category: Category
    ward_code: str
    address: str = ""
    phone: str = ""
    default_stay_minutes: int | None = Field(None, ge=1, le=24 * 60)
    valid_from: UtcSecond | None = None
    valid_until: UtcSecond | None = None
    created_at: UtcSecond

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


@dataclass(frozen=True, slots=True)
class Visit:
    """A person's stay at a venue (docs/tracing.md, "Visits"), times in epoch seconds: what the trace API
    reads from ClickHouse, what the worker's notices carry on ``exposure-matching`` (:data:`VISIT`
    validates them) and what the contact rule compares. The worker computes visits from scans
    (``streams.visits.VisitSpan`` adds the scans that opened and closed one) and stores them with a
    version and a tombstone flag (``streams.sink.VISIT_COLUMNS``)."""

    visit_id: str
    person_id: str
    venue_id: str
    t_in: int
    t_out: int


VISIT: TypeAdapter[Visit] = TypeAdapter(Visit)


# A 9- or 12-digit run standing alone (old CMND / CCCD number), and a chip card's QR text in JSON.
_ID_NUMBER = re.compile(r"(?<![\w-])\d{9}(?:\d{3})?(?![\w-])")
_CCCD_FIELD = re.compile(r'("cccd_qr"\s*:\s*)"(?:[^"\\]|\\.)*"')


def redact_identity(text: str) -> str:
    """``text`` without ID card numbers or chip-card QR payloads (dead letters keep everything else)."""
    return _ID_NUMBER.sub("[id number removed]", _CCCD_FIELD.sub(r'\1"[removed]"', text))


class DeadLetter(BaseModel):
    """What the dead-letter topics hold: the original bytes (ID numbers and card payloads removed: a
    client writing straight to Kafka must not leave them on a topic kept 90 days), why, and where from."""

    reason: str
    error_code: str
    raw: Annotated[str, AfterValidator(redact_identity)]
    topic: str = ""
    partition: int = -1
    offset: int = -1
    rejected_at: UtcSecond = Field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class AlertKind(StrEnum):
    contact = "contact"  # a contact of a case (one per case and contact)
    declaration = "declaration"  # a health declaration with symptoms or contact with a case (issue 15)


class Alert(BaseModel):
    """One alert per (case, contact), addressed to a ward health center; or one per health declaration
    that needs a call (``kind`` ``declaration``: ``case_id`` is empty, ``generation`` 0, ``venue_id`` the
    venue where it was declared, if any)."""

    alert_id: str
    case_id: str
    person_id: str
    generation: int
    ward_code: str
    venue_id: str
    created_at: UtcSecond
    kind: AlertKind = AlertKind.contact


def to_jsonable(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


class ExposureWindow(BaseModel):
    """A span at a venue that makes anyone present a contact of a case (streaming alert matcher).

    ``generation`` is the generation of the contacts it finds: 1 for a case visit, 2 for a visit
    of generation-1 contact ``via_person_id``. ``t_in``/``t_out`` are the source visit (epoch
    seconds); ``window``/``min_overlap`` are the contract's W and M in seconds.
    """

    model_config = ConfigDict(frozen=True)

    kind: str = "window"
    case_id: str
    case_person_id: str
    generation: int
    via_person_id: str | None = None
    venue_id: str
    visit_id: str
    t_in: int
    t_out: int
    window: int
    min_overlap: int
    case_end: int  # the case's infectious_to (a generation-1 contact is traced up to it)
    expires_at: int
    # True when raised by the matcher itself (a late contact's own visits): it also checks the visits
    # already in ClickHouse, which no trace has seen.
    backfill: bool = False

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class TracedPerson(BaseModel):
    """A person whose visits make others contacts of a case: the case person (``generation`` 0) over the
    infectious period, or a generation-1 contact (``generation`` 1) from the ``contact_visit.t_in`` of
    their earliest exposure to the case's ``infectious_to`` (docs/tracing.md, "Depth 2").

    On the compacted ``traced-persons`` topic, keyed ``case_id|person_id``; every worker reads it whole,
    so a visit of such a person written at any time (a late scan) becomes an exposure window of
    ``generation + 1`` and raises the alerts it implies.
    """

    model_config = ConfigDict(frozen=True)

    case_id: str
    case_person_id: str
    person_id: str
    generation: int = Field(ge=0, le=1)
    t_from: int
    t_to: int
    window: int
    min_overlap: int
    expires_at: int

    @property
    def key(self) -> bytes:
        return f"{self.case_id}|{self.person_id}".encode()

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
