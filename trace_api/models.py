"""API schemas of the trace API, in families (``*Create`` in, ``*Out`` / ``*Page`` out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from truyvet.events import PersonId, UtcSecond
from truyvet.web import ErrorDetail, ErrorOut

# ClickHouse DateTime holds 1970..2105; a case or audit time outside 2000..2100 is a typo.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("time must lie between 2000-01-01 and 2100-01-01")
    return value


Time = Annotated[UtcSecond, AfterValidator(_in_range)]


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries so every documented error has the contract's error JSON schema."""
    text = {
        401: "Missing or unknown token",
        403: "Role or ward not allowed",
        404: "Not found",
        422: "Invalid request",
    }
    return {s: {"model": ErrorOut, "description": text.get(s, "Error")} for s in statuses}


class CaseCreate(BaseModel):
    person_id: PersonId
    infectious_from: Time
    infectious_to: Time
    label: str = Field("", max_length=200)


class CaseCreated(BaseModel):
    case_id: str


class Span(BaseModel):
    t_in: datetime
    t_out: datetime


class ExposureOut(BaseModel):
    venue_id: str
    case_visit: Span
    contact_visit: Span
    overlap_minutes: float


class PersonalDetails(BaseModel):
    """From the restricted store (CCCD scans); only for health roles of the person's ward, on request."""

    full_name: str
    birth_date: str
    sex: str
    address: str
    residence_ward_code: str


class PersonOut(PersonalDetails):
    person_id: str


class DetailConflictOut(PersonOut):
    """A card that disagreed with the stored details of ``person_id`` (the stored ones stand)."""

    stored_ward_code: str
    reported_by: str
    received_at: datetime


class DetailConflictsPage(BaseModel):
    conflicts: list[DetailConflictOut]


class ContactOut(BaseModel):
    person_id: str
    generation: int
    via_person_id: str | None
    ward_code: str
    exposures: list[ExposureOut]
    personal: PersonalDetails | None = Field(None, description="only with include=personal")


class TraceParamsOut(BaseModel):
    depth: int
    window_minutes: int
    min_overlap_minutes: int
    infectious_from: datetime
    infectious_to: datetime


class ContactsPage(BaseModel):
    case_id: str
    params: TraceParamsOut
    contacts: list[ContactOut]


class PublishSpan(BaseModel):
    """Anyone at the venue between exposed_from and exposed_to may have been exposed (stay widened by W)."""

    exposed_from: datetime
    exposed_to: datetime
    case_visits: list[Span]


class ExposureSiteOut(BaseModel):
    venue_id: str
    name: str
    category: str
    ward_code: str
    address: str
    spans: list[PublishSpan]


class ExposureSitesPage(BaseModel):
    case_id: str
    window_minutes: int
    sites: list[ExposureSiteOut]


class AuditEntryOut(BaseModel):
    at: datetime
    actor: str
    role: str
    ward_code: str
    action: str
    case_id: str
    params: dict[str, Any]
    result_count: int
    reason: str


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]


__all__ = ["ErrorDetail", "ErrorOut", "PersonId", "Time"]
