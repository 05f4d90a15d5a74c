"""The web dashboard served by the trace API.

The pages are static shells (``trace_api/web``): they carry no data and need no token. The token a
user pastes is kept in the browser's sessionStorage and sent as ``Authorization: Bearer`` to the
JSON API (the contract's endpoints plus the small look-ups below), so a health-center token sees
only what the API lets it see. Charts and the transmission graph are drawn as SVG in the browser
by a small bundled script; nothing is loaded from outside at run time.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field

from trace_api import access, audit, queries
from trace_api.deps import get_db
from truyvet.auth import Principal, Role
from truyvet.events import VenueId
from truyvet.schema.db import Database
from truyvet.web import ApiError, require, static_files, static_response

router = APIRouter(tags=["dashboard"])

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = {"": "login.html", "case": "case.html", "alerts": "alerts.html", "coverage": "coverage.html",
         "compliance": "compliance.html",  # compliance: issue 15
         "followups": "followups.html"}
# Only files that exist at start are served: no path from the request reaches the filesystem.
STATIC = static_files(WEB / "static")
ANY_ROLE = tuple(Role)
MAX_PLACES = 1000  # venue ids per /v1/dashboard/places request (each at most 64 characters)
_NO_STORE = {"Cache-Control": "no-store"}
# Pages may load and call only this server: nothing from outside at run time, no inline script.
_PAGE_HEADERS = {**_NO_STORE, "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                 "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@router.get("/dashboard", include_in_schema=False)
def dashboard_root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard/static/{name}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    return static_response(STATIC, name, _NO_STORE)


@router.get("/dashboard/{page}", include_in_schema=False)
@router.get("/dashboard/", include_in_schema=False)
def page(page: str = "") -> FileResponse:
    name = PAGES.get(page)
    if name is None:
        raise ApiError(404, "not_found", f"no page {page}")
    return FileResponse(WEB / "pages" / name, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


class Me(BaseModel):
    role: Role
    ward_code: str
    ward_name: str
    name: str


class PlacesQuery(BaseModel):
    venue_ids: list[VenueId] = Field(default_factory=list, max_length=MAX_PLACES)


class VenueLabel(BaseModel):
    name: str
    category: str
    ward_code: str


class Places(BaseModel):
    venues: dict[str, VenueLabel]
    wards: dict[str, str]


class CaseSummary(BaseModel):
    case_id: str
    person_id: str
    label: str
    infectious_from: str
    infectious_to: str
    created_at: str


def _iso(value: object) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]


@router.get("/v1/dashboard/me", response_model=Me)
def me(db: Database = Depends(get_db), principal: Principal = Depends(require(*ANY_ROLE))) -> Me:
    """Who the token belongs to: role, ward (health centers) and display name."""
    return Me(role=principal.role, ward_code=principal.ward_code,
              ward_name=queries.ward_names(db).get(principal.ward_code, ""), name=principal.name)


@router.post("/v1/dashboard/places", response_model=Places)
def places(body: PlacesQuery, db: Database = Depends(get_db),
           principal: Principal = Depends(require(Role.epidemiologist, Role.health_center, Role.viewer))) -> Places:
    """Names of the venues (by id) the reader may see, and of all wards and communes, for labels."""
    venues = {v: VenueLabel(name=n, category=c, ward_code=w)
              for v, (n, c, w) in access.labelled_venues(db, principal, body.venue_ids).items()}
    return Places(venues=venues, wards=queries.ward_names(db))


@router.get("/v1/dashboard/cases", response_model=list[CaseSummary])
def recent_cases(limit: int = Query(20, ge=1, le=200), db: Database = Depends(get_db),
                 principal: Principal = Depends(require(Role.epidemiologist))) -> list[CaseSummary]:
    """The most recently registered cases (epidemiologists), to reopen one on the case page (audited)."""
    found = [CaseSummary(case_id=c, person_id=p, label=lb, infectious_from=_iso(f), infectious_to=_iso(t),
                         created_at=_iso(at)) for c, p, lb, f, t, at in queries.recent_cases(db, limit)]
    audit.record(db, principal, audit.CASES_LIST, params={"limit": limit}, result_count=len(found))
    return found
