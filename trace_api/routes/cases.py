"""Cases, their contacts (JSON or CSV) and exposure sites (docs/api.md, "Trace API")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import ORJSONResponse, Response

import trace_api.alerting as alerting  # issue 6 (alerts)
from trace_api import audit, deps, export, queries
from trace_api.config import TraceSettings
from trace_api.contacts import Contact, TraceParams, trace
from trace_api.models import (
    CaseCreate,
    CaseCreated,
    ContactsPage,
    ExposureSiteOut,
    ExposureSitesPage,
    PersonalDetails,
    PublishSpan,
    Span,
    error_responses,
)
from trace_api.tracing import VisitRow, overlapping
from truyvet import alerts
from truyvet.alerts import addressee_ward
from truyvet.auth import Principal, Role
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(prefix="/v1/cases", tags=["cases"], responses=error_responses(401, 403, 422))

TRACERS = (Role.epidemiologist, Role.health_center)
Reason = Query("", max_length=500, description="why the data is looked at (kept in the audit log)")


def _span(v: VisitRow) -> Span:
    return Span(t_in=queries.ts(v.t_in), t_out=queries.ts(v.t_out))


def load_case(db: Database, case_id: str) -> tuple[str, int, int]:
    rows = db.execute(
        "SELECT person_id, infectious_from, infectious_to FROM cases FINAL WHERE case_id = %(c)s",
        {"c": case_id},
    )
    if not rows:
        raise ApiError(404, "not_found", f"no case {case_id}")
    person, start, end = rows[0]
    return str(person), int(start.timestamp()), int(end.timestamp())


@router.post("", status_code=201, response_model=CaseCreated)
def create_case(
    body: CaseCreate,
    request: Request,
    db: Database = Depends(deps.get_db),
    principal: Principal = Depends(require(Role.epidemiologist)),
) -> CaseCreated:
    """Register a positive case with its infectious period."""
    if body.infectious_to < body.infectious_from:
        raise ApiError(422, "invalid_request", "infectious_to is before infectious_from")
    case_id = "case_" + uuid.uuid4().hex[:16]
    db.insert(
        "cases",
        ["case_id", "person_id", "infectious_from", "infectious_to", "label", "created_by", "created_at"],
        [
            (
                case_id,
                body.person_id,
                body.infectious_from,
                body.infectious_to,
                body.label,
                principal.actor,
                datetime.now(UTC).replace(microsecond=0),
            )
        ],
    )
    audit.record(
        db,
        principal,
        audit.CASE_CREATE,
        case_id=case_id,
        params={
            "infectious_from": body.infectious_from.isoformat(),
            "infectious_to": body.infectious_to.isoformat(),
        },
    )
    alerting.on_case_registered(db, request.app.state.settings, case_id, body)  # issue 6 (alerts)
    return CaseCreated(case_id=case_id)


def trace_params(
    settings: TraceSettings, depth: int, window_minutes: int | None, min_overlap_minutes: int | None
) -> TraceParams:
    """The query's W and M, else the configured defaults (per venue category where configured)."""
    return TraceParams(
        depth=depth,
        window=(settings.window_minutes if window_minutes is None else window_minutes) * 60,
        min_overlap=(settings.min_overlap_minutes if min_overlap_minutes is None else min_overlap_minutes)
        * 60,
        max_stay=max(settings.max_stay_minutes, settings.max_visit_minutes) * 60,
        category_window={}
        if window_minutes is not None
        else {c.value: m * 60 for c, m in settings.category_window_minutes.items()},
    )


def contact_wards(
    db: Database, contacts: list[Contact], settings: TraceSettings | None = None
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Each contact's ward (:func:`truyvet.alerts.addressee_ward`), with the personal details read for it.

    :param settings: if given, the two look-ups run at the same time (the second on its own client).
    """
    persons = [c.person_id for c in contacts]
    if settings is not None and contacts:
        pending = deps.in_background(settings, lambda side: queries.person_details(side, persons))
        venue_of = alerts.venue_wards(db, {c.exposures[0].venue_id for c in contacts})
        details = pending.result()
    else:
        details = queries.person_details(db, persons)
        venue_of = alerts.venue_wards(db, {c.exposures[0].venue_id for c in contacts})
    wards = {c.person_id: addressee_ward(details.get(c.person_id, {}).get("residence_ward_code", ""),
                                         venue_of.get(c.exposures[0].venue_id, "")) for c in contacts}
    return wards, details


def may_read_personal(principal: Principal, residence_ward: str) -> bool:
    """Health roles only; a health center only for residents of its own ward."""
    if principal.role in (Role.admin, Role.epidemiologist):
        return True
    return (
        principal.role == Role.health_center
        and bool(residence_ward)
        and residence_ward == principal.ward_code
    )


CSV_HEADER = [
    "case_id",
    "person_id",
    "generation",
    "via_person_id",
    "ward_code",
    "venue_id",
    "venue_name",
    "case_t_in",
    "case_t_out",
    "contact_t_in",
    "contact_t_out",
    "overlap_minutes",
]
PERSONAL_HEADER = ["full_name", "birth_date", "sex", "address", "residence_ward_code"]


def _csv(db: Database, case_id: str, contacts: list[dict[str, Any]], personal: bool) -> str:
    venue_ids = {e["venue_id"] for c in contacts for e in c["exposures"]}
    names = {v: info["name"] for v, info in queries.venues(db, venue_ids).items()}
    rows = []
    for c in contacts:
        p = c["personal"]
        extra = [p[k] for k in PERSONAL_HEADER] if p else [""] * len(PERSONAL_HEADER)
        for e in c["exposures"]:
            cv, kv = e["case_visit"], e["contact_visit"]
            rows.append([case_id, c["person_id"], c["generation"], c["via_person_id"] or "", c["ward_code"],
                         e["venue_id"], names.get(e["venue_id"], ""), cv["t_in"], cv["t_out"], kv["t_in"],
                         kv["t_out"], e["overlap_minutes"], *(extra if personal else [])])
    return export.to_csv(CSV_HEADER + (PERSONAL_HEADER if personal else []), rows)


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%dT")


@lru_cache(maxsize=65536)
def iso_seconds(seconds: int) -> str:
    """RFC 3339 UTC to the second, built from a cached day: a large trace has ~100,000 distinct times."""
    day, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_iso_day(day)}{hours:02d}:{minutes:02d}:{secs:02d}Z"


def _contact(c: Contact, ward: str, personal: dict[str, str] | None,
             spans: dict[tuple[int, int], dict[str, str]] | None = None) -> dict[str, Any]:
    """A ContactOut as plain data: large traces skip per-object validation (the schema test checks the shape).

    ``spans`` shares one ``{"t_in", "t_out"}`` object per distinct interval across a whole answer (a
    case visit appears in thousands of exposures); the JSON is the same.
    """
    spans = {} if spans is None else spans

    def span(t_in: int, t_out: int) -> dict[str, str]:
        found = spans.get((t_in, t_out))
        if found is None:
            found = spans[(t_in, t_out)] = {"t_in": iso_seconds(t_in), "t_out": iso_seconds(t_out)}
        return found

    return {
        "person_id": c.person_id,
        "generation": c.generation,
        "via_person_id": c.via_person_id,
        "ward_code": ward,
        "exposures": [
            {
                "venue_id": e.venue_id,
                "case_visit": span(e.case_visit.t_in, e.case_visit.t_out),
                "contact_visit": span(e.contact_visit.t_in, e.contact_visit.t_out),
                "overlap_minutes": round(e.overlap_seconds / 60, 2),
            }
            for e in c.exposures
        ],
        "personal": personal,
    }


@router.get(
    "/{case_id}/contacts",
    response_model=ContactsPage,
    responses={
        **error_responses(404),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with format=csv",
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
    format: Literal["json", "csv"] = Query("json"),  # noqa: A002 - the contract's parameter name
    reason: str = Reason,
    db: Database = Depends(deps.get_db),
    principal: Principal = Depends(require(*TRACERS)),
) -> ContactsPage | Response:
    """Everyone co-located with the case (F1) and, with depth=2, their contacts (F2)."""
    settings: TraceSettings = request.app.state.settings
    person, start, end = load_case(db, case_id)
    params = trace_params(settings, depth, window_minutes, min_overlap_minutes)
    contacts = trace(db, person_id=person, start=start, end=end, params=params).contacts
    window_out = params.window // 60
    min_overlap_out = params.min_overlap // 60
    personal = include == "personal"

    def record_trace(audit_db: Database, count: int) -> None:
        audit.record(
            audit_db,
            principal,
            audit.CASE_EXPORT if format == "csv" else audit.CASE_TRACE,
            case_id=case_id,
            params={
                "depth": depth,
                "window_minutes": window_out,
                "min_overlap_minutes": min_overlap_out,
                "include": include or "",
                "format": format,
            },
            result_count=count,
            reason=reason,
        )

    # Every role but health_center gets every contact, so the count is known now: the audit entry is
    # written while the wards are looked up, and waited for before anything is answered.
    scoped = principal.role == Role.health_center
    audited = None if scoped else deps.in_background(settings, lambda side: record_trace(side, len(contacts)))
    # The wards are looked up on other clients while the answer's exposures are built here.
    looked_up = deps.in_background(settings, lambda side: contact_wards(side, contacts, settings))
    spans: dict[tuple[int, int], dict[str, str]] = {}
    built = [_contact(c, "", None, spans) for c in contacts]
    wards, details = looked_up.result()
    out: list[dict[str, Any]] = []
    read: list[str] = []
    for c, item in zip(contacts, built, strict=True):
        ward = wards[c.person_id]
        if scoped and ward != principal.ward_code:
            continue
        item["ward_code"] = ward
        found = details.get(c.person_id)
        if personal and found and may_read_personal(principal, found["residence_ward_code"]):
            item["personal"] = {k: found[k] for k in PersonalDetails.model_fields}
            read.append(c.person_id)
        out.append(item)
    if audited is None:
        record_trace(db, len(out))
    else:
        audited.result()  # re-raises a failed insert: no answer without its audit entry
    if personal:
        audit.record(
            db,
            principal,
            audit.PERSON_READ,
            case_id=case_id,
            params={"persons": read},
            result_count=len(read),
            reason=reason,
        )
    if format == "csv":
        return Response(
            _csv(db, case_id, out, personal),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="contacts-{case_id[:40]}.csv"'},
        )
    page = {
        "case_id": case_id,
        "params": {"depth": depth, "window_minutes": window_out, "min_overlap_minutes": min_overlap_out,
                   "infectious_from": iso_seconds(start), "infectious_to": iso_seconds(end)},
        "contacts": out,
    }
    return ORJSONResponse(page)


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
    settings: TraceSettings = request.app.state.settings
    person, start, end = load_case(db, case_id)
    params = trace_params(settings, 1, window_minutes, None)
    visits = overlapping(queries.person_visits(db, [person], start, end, params.max_stay), start, end)
    info = queries.venues(db, {v.venue_id for v in visits})
    sites = []
    for venue in sorted({v.venue_id for v in visits}):
        meta = info.get(venue, {"name": "", "category": "", "ward_code": "", "address": ""})
        if principal.role == Role.health_center and meta["ward_code"] != principal.ward_code:
            continue
        w = params.category_window.get(meta["category"], params.window)
        spans: list[PublishSpan] = []
        for v in sorted((v for v in visits if v.venue_id == venue), key=lambda v: (v.t_in, v.t_out)):
            lo, hi = v.t_in - w, v.t_out + w
            if spans and lo <= int(spans[-1].exposed_to.timestamp()):
                last = spans[-1]
                last.exposed_to = max(last.exposed_to, queries.ts(hi))
                last.case_visits.append(_span(v))
            else:
                spans.append(
                    PublishSpan(
                        exposed_from=queries.ts(lo), exposed_to=queries.ts(hi), case_visits=[_span(v)]
                    )
                )
        sites.append(ExposureSiteOut(venue_id=venue, spans=spans, **meta))
    audit.record(
        db,
        principal,
        audit.CASE_SITES,
        case_id=case_id,
        params={"window_minutes": params.window // 60},
        result_count=len(sites),
        reason=reason,
    )
    return ExposureSitesPage(case_id=case_id, window_minutes=params.window // 60, sites=sites)
