"""Cases and their contacts (CONTRACT.md, "Trace API")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

import trace_api.alerting as alerting  # issue 6 (alerts)
from trace_api import audit, queries
from trace_api.config import TraceSettings
from trace_api.contacts import TraceParams, trace
from trace_api.deps import get_db
from trace_api.tracing import VisitRow
from truyvet.auth import Principal, Role
from truyvet.events import PersonId, UtcSecond
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(prefix="/v1/cases", tags=["cases"])


class CaseCreate(BaseModel):
    person_id: PersonId
    infectious_from: UtcSecond
    infectious_to: UtcSecond
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


class ContactOut(BaseModel):
    person_id: str
    generation: int
    via_person_id: str | None
    ward_code: str
    exposures: list[ExposureOut]


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


def _span(v: VisitRow) -> Span:
    return Span(t_in=queries.ts(v.t_in), t_out=queries.ts(v.t_out))


def load_case(db: Database, case_id: str) -> tuple[str, int, int]:
    rows = db.execute(
        "SELECT person_id, infectious_from, infectious_to FROM cases FINAL WHERE case_id = %(c)s", {"c": case_id}
    )
    if not rows:
        raise ApiError(404, "not_found", f"no case {case_id}")
    person, start, end = rows[0]
    return str(person), int(start.timestamp()), int(end.timestamp())


@router.post("", status_code=201, response_model=CaseCreated)
def create_case(body: CaseCreate, request: Request, db: Database = Depends(get_db),
                principal: Principal = Depends(require(Role.epidemiologist))) -> CaseCreated:
    """Register a positive case with its infectious period."""
    if body.infectious_to < body.infectious_from:
        raise ApiError(422, "invalid_request", "infectious_to is before infectious_from")
    case_id = "case_" + uuid.uuid4().hex[:16]
    db.insert("cases", ["case_id", "person_id", "infectious_from", "infectious_to", "label", "created_by", "created_at"],
              [(case_id, body.person_id, body.infectious_from, body.infectious_to, body.label, principal.actor,
                datetime.now(UTC).replace(microsecond=0))])
    audit.record(db, principal, "case.create", case_id=case_id,
                 params={"infectious_from": body.infectious_from.isoformat(),
                         "infectious_to": body.infectious_to.isoformat()})
    alerting.on_case_registered(db, request.app.state.settings, case_id, body)  # issue 6 (alerts)
    return CaseCreated(case_id=case_id)


@router.get("/{case_id}/contacts", response_model=ContactsPage)
def get_contacts(
    case_id: str,
    request: Request,
    depth: int = Query(1, ge=1, le=2),
    window_minutes: int | None = Query(None, ge=0, le=24 * 60),
    min_overlap_minutes: int | None = Query(None, ge=0, le=24 * 60),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.epidemiologist, Role.health_center)),
) -> ContactsPage:
    """Everyone co-located with the case (F1) and, with depth=2, their contacts (F2)."""
    settings: TraceSettings = request.app.state.settings
    person, start, end = load_case(db, case_id)
    window = settings.window_minutes if window_minutes is None else window_minutes
    min_overlap = settings.min_overlap_minutes if min_overlap_minutes is None else min_overlap_minutes
    params = TraceParams(depth=depth, window=window * 60, min_overlap=min_overlap * 60,
                         max_stay=settings.max_stay_minutes * 60)
    _, contacts = trace(db, person_id=person, start=start, end=end, params=params)
    wards = queries.venue_wards(db, (e.venue_id for c in contacts for e in c.exposures))
    out = []
    for c in contacts:
        ward = wards.get(c.exposures[0].venue_id, "")
        if principal.role == Role.health_center and ward != principal.ward_code:
            continue
        out.append(ContactOut(
            person_id=c.person_id, generation=c.generation, via_person_id=c.via_person_id, ward_code=ward,
            exposures=[ExposureOut(venue_id=e.venue_id, case_visit=_span(e.case_visit),
                                   contact_visit=_span(e.contact_visit),
                                   overlap_minutes=round(e.overlap_seconds / 60, 2)) for e in c.exposures],
        ))
    audit.record(db, principal, "case.trace", case_id=case_id,
                 params={"depth": depth, "window_minutes": window, "min_overlap_minutes": min_overlap},
                 result_count=len(out))
    return ContactsPage(
        case_id=case_id,
        params=TraceParamsOut(depth=depth, window_minutes=window, min_overlap_minutes=min_overlap,
                              infectious_from=queries.ts(start), infectious_to=queries.ts(end)),
        contacts=out,
    )
