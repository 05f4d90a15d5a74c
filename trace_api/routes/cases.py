"""Cases, their contacts (JSON or CSV) and exposure sites (docs/api.md, "Trace API"): thin over
trace_api/cases.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import ORJSONResponse, Response

from trace_api import cases, deps, export
from trace_api.access import TRACERS
from trace_api.models import CaseCreate, CaseCreated, ContactsPage, ExposureSitesPage, error_responses
from truyvet.auth import Principal, Role
from truyvet.schema.db import Database
from truyvet.web import require

router = APIRouter(prefix="/v1/cases", tags=["cases"], responses=error_responses(401, 403, 422))

Reason = Query("", max_length=500, description="why the data is looked at (kept in the audit log)")


@router.post("", status_code=201, response_model=CaseCreated)
def create_case(
    body: CaseCreate,
    request: Request,
    db: Database = Depends(deps.get_db),
    principal: Principal = Depends(require(Role.epidemiologist)),
) -> CaseCreated:
    """Register a positive case with its infectious period."""
    return CaseCreated(case_id=cases.register(db, request.app.state.settings, principal, body))


@router.get(
    "/{case_id}/contacts",
    response_model=ContactsPage,
    responses={
        **error_responses(404),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}},
                        export.XLSX_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
            "description": "JSON, or a CSV / xlsx export with format=csv|xlsx (Vietnamese headers, local time)",
        },
    },
)
def get_contacts(
    case_id: str,
    request: Request,
    depth: int = Query(1, ge=1, le=2),
    window_minutes: int | None = Query(None, ge=0, le=24 * 60),
    min_overlap_minutes: int | None = Query(None, ge=0, le=24 * 60),
    include: Literal["personal"] | None = Query(None, description="personal: add personal details"),
    format: Literal["json", "csv", "xlsx"] = Query("json"),  # noqa: A002 - the contract's parameter name
    reason: str = Reason,
    db: Database = Depends(deps.get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> ContactsPage | Response:
    """Everyone co-located with the case (F1) and, with depth=2, their contacts (F2)."""
    settings = request.app.state.settings
    params = cases.trace_params(settings, depth, window_minutes, min_overlap_minutes)
    personal = include == "personal"
    shown, contacts = cases.contacts(db, settings, principal, case_id, params, personal=personal,
                                     export_format=format, reason=reason)
    if format != "json":
        return export.response(cases.contacts_table(db, case_id, contacts, personal), format)
    return ORJSONResponse({"case_id": case_id, "params": shown, "contacts": contacts})


@router.get("/{case_id}/exposure-sites", response_model=ExposureSitesPage, responses=error_responses(404))
def get_exposure_sites(
    case_id: str,
    request: Request,
    window_minutes: int | None = Query(None, ge=0, le=24 * 60),
    reason: str = Reason,
    db: Database = Depends(deps.get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> ExposureSitesPage:
    """Venues the case visited while infectious, with the time spans to publish (stay widened by W)."""
    window, sites = cases.exposure_sites(db, request.app.state.settings, principal, case_id, window_minutes, reason)
    return ExposureSitesPage(case_id=case_id, window_minutes=window, sites=sites)
