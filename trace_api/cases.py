"""Cases: registration, their contacts as the API answers them (JSON or CSV), their exposure sites.

The routes (trace_api/routes/cases.py) only parse the request and shape the response; the rules live
here and below: tracing (contacts.py, tracing.py), access (access.py), reads (queries.py), audit
(audit.py), exports (export.py), alerts (alerting.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import trace_api.alerting as alerting
from trace_api import access, audit, deps, export, queries
from trace_api.config import TraceSettings
from trace_api.contacts import Contact, TraceParams, trace
from trace_api.models import CaseCreate, ExposureSiteOut, PersonalDetails, PublishSpan, Span
from trace_api.timefmt import iso_seconds
from trace_api.tracing import overlapping
from truyvet.auth import Principal, Role
from truyvet.events import Visit
from truyvet.schema.db import Database
from truyvet.web import ApiError

# Exports (docs/api.md, "Exports"): Vietnamese headers, local time with the offset.
CSV_HEADER = ["Mã ca bệnh", "Mã người", "Cấp (F)", "Qua người (F1)", "Mã phường/xã", "Mã địa điểm", "Tên địa điểm",
              "Ca bệnh vào", "Ca bệnh ra", "Người tiếp xúc vào", "Người tiếp xúc ra", "Thời gian trùng (phút)"]
PERSONAL_KEYS = ["full_name", "birth_date", "sex", "address", "residence_ward_code"]
PERSONAL_HEADER = ["Họ và tên", "Ngày sinh", "Giới tính", "Địa chỉ", "Mã phường/xã cư trú"]


def trace_params(settings: TraceSettings, depth: int, window_minutes: int | None = None,
                 min_overlap_minutes: int | None = None) -> TraceParams:
    """The query's W and M, else the configured defaults (per venue category where configured)."""
    return TraceParams(
        depth=depth,
        window=(settings.window_minutes if window_minutes is None else window_minutes) * 60,
        min_overlap=(settings.min_overlap_minutes if min_overlap_minutes is None else min_overlap_minutes) * 60,
        max_stay=max(settings.max_stay_minutes, settings.max_visit_minutes) * 60,
        category_window={} if window_minutes is not None
        else {c.value: m * 60 for c, m in settings.category_window_minutes.items()},
    )


def case_period(db: Database, case_id: str) -> tuple[str, int, int]:
    """(person, infectious_from, infectious_to) of the case; 404 if there is none."""
    found = queries.case_period(db, case_id)
    if found is None:
        raise ApiError(404, "not_found", f"no case {case_id}")
    return found


def register(db: Database, settings: TraceSettings, principal: Principal, body: CaseCreate) -> str:
    """Store the case, audit it, raise its alerts; return its id."""
    if body.infectious_to < body.infectious_from:
        raise ApiError(422, "invalid_request", "infectious_to is before infectious_from")
    case_id = "case_" + uuid.uuid4().hex[:16]
    queries.insert_case(db, case_id=case_id, person_id=body.person_id, infectious_from=body.infectious_from,
                        infectious_to=body.infectious_to, label=body.label, created_by=principal.actor)
    audit.record(db, principal, audit.CASE_CREATE, case_id=case_id,
                 params={"infectious_from": body.infectious_from.isoformat(),
                         "infectious_to": body.infectious_to.isoformat()})
    alerting.raise_case_alerts(db, case_id=case_id, person_id=body.person_id,
                               start=int(body.infectious_from.timestamp()), end=int(body.infectious_to.timestamp()),
                               params=trace_params(settings, alerting.depth()))
    return case_id


def contact_item(c: Contact, ward: str, personal: dict[str, str] | None,
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
            {"venue_id": e.venue_id, "case_visit": span(e.case_visit.t_in, e.case_visit.t_out),
             "contact_visit": span(e.contact_visit.t_in, e.contact_visit.t_out),
             "overlap_minutes": round(e.overlap_seconds / 60, 2)}
            for e in c.exposures
        ],
        "personal": personal,
    }


def contacts(db: Database, settings: TraceSettings, principal: Principal, case_id: str, params: TraceParams, *,
             personal: bool, export_format: str, reason: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The contacts the principal may see (with personal details where allowed), audited: (params, contacts)."""
    person, start, end = case_period(db, case_id)
    found = trace(db, person_id=person, start=start, end=end, params=params).contacts
    shown = {"depth": params.depth, "window_minutes": params.window // 60,
             "min_overlap_minutes": params.min_overlap // 60}

    def record_trace(audit_db: Database, count: int) -> None:
        audit.record(audit_db, principal, audit.CASE_TRACE if export_format == "json" else audit.CASE_EXPORT,
                     case_id=case_id, params={**shown, "include": "personal" if personal else "",
                                              "format": export_format},
                     result_count=count, reason=reason)

    # Every role but health_center gets every contact, so the count is known now: the audit entry is
    # written while the wards are looked up, and waited for before anything is answered.
    scoped = principal.role == Role.health_center
    audited = None if scoped else deps.in_background(settings, lambda side: record_trace(side, len(found)))
    # The wards are looked up on other clients while the answer's exposures are built here.
    looked_up = deps.in_background(settings, lambda side: access.contact_wards(side, found, settings))
    spans: dict[tuple[int, int], dict[str, str]] = {}
    built = [contact_item(c, "", None, spans) for c in found]
    wards, details = looked_up.result()
    out: list[dict[str, Any]] = []
    read: list[str] = []
    for c, item in zip(found, built, strict=True):
        ward = wards[c.person_id]
        if not access.sees_ward(principal, ward):
            continue
        item["ward_code"] = ward
        known = details.get(c.person_id)
        if personal and known and access.may_read_personal(principal, known["residence_ward_code"]):
            item["personal"] = {k: known[k] for k in PersonalDetails.model_fields}
            read.append(c.person_id)
        out.append(item)
    if audited is None:
        record_trace(db, len(out))
    else:
        audited.result()  # re-raises a failed insert: no answer without its audit entry
    if personal:
        audit.record(db, principal, audit.PERSON_READ, case_id=case_id, params={"persons": read},
                     result_count=len(read), reason=reason)
    return {**shown, "infectious_from": iso_seconds(start), "infectious_to": iso_seconds(end)}, out


def contacts_table(db: Database, case_id: str, contacts: list[dict[str, Any]], personal: bool) -> export.Table:
    """One row per exposure (CSV or xlsx, export.py)."""
    venue_ids = {e["venue_id"] for c in contacts for e in c["exposures"]}
    names = {v: info["name"] for v, info in queries.venues(db, venue_ids).items()}
    rows = []
    for c in contacts:
        p = c["personal"]
        extra = [p[k] for k in PERSONAL_KEYS] if p else [""] * len(PERSONAL_KEYS)
        for e in c["exposures"]:
            cv, kv = e["case_visit"], e["contact_visit"]
            rows.append([case_id, c["person_id"], c["generation"], c["via_person_id"] or "", c["ward_code"],
                         e["venue_id"], names.get(e["venue_id"], ""), export.local_time(cv["t_in"]),
                         export.local_time(cv["t_out"]), export.local_time(kv["t_in"]),
                         export.local_time(kv["t_out"]), e["overlap_minutes"], *(extra if personal else [])])
    return export.Table(CSV_HEADER + (PERSONAL_HEADER if personal else []), rows, f"contacts-{case_id[:40]}")


def _span(v: Visit) -> Span:
    return Span(t_in=queries.ts(v.t_in), t_out=queries.ts(v.t_out))


def exposure_sites(db: Database, settings: TraceSettings, principal: Principal, case_id: str,
                   window_minutes: int | None, reason: str) -> tuple[int, list[ExposureSiteOut]]:
    """Venues the case visited while infectious, with the spans to publish (stay widened by W), audited."""
    person, start, end = case_period(db, case_id)
    params = trace_params(settings, 1, window_minutes, None)
    visits = overlapping(queries.person_visits(db, [person], start, end, params.max_stay), start, end)
    info = queries.venues(db, {v.venue_id for v in visits})
    sites = []
    for venue in sorted({v.venue_id for v in visits}):
        meta = info.get(venue, {"name": "", "category": "", "ward_code": "", "address": ""})
        if not access.sees_ward(principal, meta["ward_code"]):
            continue
        w = params.category_window.get(meta["category"], params.window)
        spans: list[PublishSpan] = []
        for v in sorted((v for v in visits if v.venue_id == venue), key=lambda v: (v.t_in, v.t_out)):
            lo, hi = v.t_in - w, v.t_out + w
            if spans and lo <= int(spans[-1].exposed_to.timestamp()):
                spans[-1].exposed_to = max(spans[-1].exposed_to, queries.ts(hi))
                spans[-1].case_visits.append(_span(v))
            else:
                spans.append(PublishSpan(exposed_from=queries.ts(lo), exposed_to=queries.ts(hi),
                                         case_visits=[_span(v)]))
        sites.append(ExposureSiteOut(venue_id=venue, spans=spans, **meta))
    audit.record(db, principal, audit.CASE_SITES, case_id=case_id, params={"window_minutes": params.window // 60},
                 result_count=len(sites), reason=reason)
    return params.window // 60, sites
