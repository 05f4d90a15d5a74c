"""Follow-up lists (docs/api.md, "Follow-up and people"): thin over trace_api/followups.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import ORJSONResponse, Response
from pydantic import BaseModel, Field

from trace_api import export, followups
from trace_api.access import TRACERS
from trace_api.deps import get_db
from trace_api.models import CaseCreated, Time, error_responses
from trace_api.routes.cases import Reason
from truyvet.auth import Principal
from truyvet.followups import FollowUpStatus
from truyvet.schema.db import Database
from truyvet.web import require

router = APIRouter(prefix="/v1/follow-ups", tags=["follow-ups"], responses=error_responses(401, 403, 422))

ID = r"^[A-Za-z0-9_-]{1,64}$"


class FollowUpOut(BaseModel):
    case_id: str
    person_id: str
    generation: int
    ward_code: str
    status: FollowUpStatus
    note: str
    phone: str | None
    updated_at: str
    updated_by: str
    new_case_id: str | None = None  # addition: the case this contact was registered as


class FollowUpsPage(BaseModel):
    follow_ups: list[FollowUpOut]
    counts: dict[str, int]  # addition: records per status (before the status filter)


class FollowUpChange(BaseModel):
    status: FollowUpStatus
    note: str | None = Field(None, max_length=2000)


class FollowUpCase(BaseModel):
    infectious_from: Time
    infectious_to: Time
    label: str = Field("", max_length=200)


@router.get("", response_model=FollowUpsPage, responses={200: {"content": {
    "text/csv": {"schema": {"type": "string"}}, export.XLSX_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
    "description": "JSON, or a CSV / xlsx export with format=csv|xlsx"}})
def list_follow_ups(
    request: Request,
    ward_code: str | None = Query(None, max_length=64),
    case_id: str | None = Query(None, max_length=64),
    status: FollowUpStatus | None = Query(None),
    generation: int | None = Query(None, ge=1, le=2, description="addition: 1 (F1) or 2 (F2)"),
    format: Literal["json", "csv", "xlsx"] = Query("json"),  # noqa: A002 - the contract's parameter name
    reason: str = Reason,
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> ORJSONResponse | Response:
    """A ward's follow-up list: every contact of every case with its status (a health center: its ward)."""
    rows, counts = followups.list_follow_ups(db, request.app.state.settings, principal, ward_code=ward_code,
                                             case_id=case_id, status=status, generation=generation, fmt=format,
                                             reason=reason)
    if format != "json":
        return export.response(followups.export_table(rows, followups.ward_scope(principal, ward_code)), format)
    return ORJSONResponse({"follow_ups": rows, "counts": counts})


@router.put("/{case_id}/{person_id}", response_model=FollowUpOut, responses=error_responses(404))
def change_follow_up(
    body: FollowUpChange,
    case_id: str = Path(..., pattern=ID),
    person_id: str = Path(..., pattern=ID),
    reason: str = Reason,
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> ORJSONResponse:
    """Set a contact's follow-up status (and note); who and when are kept, and audited."""
    return ORJSONResponse(followups.update(db, principal, case_id, person_id, status=body.status, note=body.note,
                                           reason=reason))


@router.post("/{case_id}/{person_id}/case", status_code=201, response_model=CaseCreated,
             responses=error_responses(404, 409))
def register_as_case(
    body: FollowUpCase,
    request: Request,
    case_id: str = Path(..., pattern=ID),
    person_id: str = Path(..., pattern=ID),
    reason: str = Reason,
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> CaseCreated:
    """Register a contact whose status is tested_positive as a new case (addition); it is traced at once."""
    return CaseCreated(case_id=followups.register_case(
        db, request.app.state.settings, principal, case_id, person_id, infectious_from=body.infectious_from,
        infectious_to=body.infectious_to, label=body.label, reason=reason))
