"""Health declarations per ward and day (issue 15), and the dashboard's bulk poster download."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from trace_api.deps import get_db
from trace_api.reports import READERS, VIETNAM_OFFSET_MINUTES, day_bounds, parse_day, ward_scope
from truyvet.auth import Principal, Role
from truyvet.events import Category
from truyvet.posters import poster_venues, posters_pdf
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(tags=["reports"])

_PER_DAY_SQL = """
SELECT intDiv(toUInt32(declared_at) + %(offset)s, 86400) AS day, ward_code, count(),
       sum(notEmpty(symptoms) OR other_symptoms != ''), sum(contact_with_case),
       sum(notEmpty(symptoms) OR other_symptoms != '' OR contact_with_case = 1)
FROM declarations FINAL
WHERE declared_at >= %(start)s AND declared_at < %(end)s {wards}
GROUP BY day, ward_code ORDER BY day, ward_code
"""


@router.get("/v1/reports/declarations")
def declarations_per_day(
    to: str | None = Query(None, description="last day, YYYY-MM-DD (default today)"),
    days: int = Query(7, ge=1, le=62),
    ward_code: str | None = Query(None, max_length=32),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> dict[str, object]:
    """Health declarations per ward and local day: all, with symptoms, with contact with a case, alerted."""
    last = parse_day(to, VIETNAM_OFFSET_MINUTES)
    first = last - timedelta(days=days - 1)
    start, _ = day_bounds(first, VIETNAM_OFFSET_MINUTES)
    _, end = day_bounds(last, VIETNAM_OFFSET_MINUTES)
    params: dict[str, object] = {"start": start, "end": end, "offset": VIETNAM_OFFSET_MINUTES * 60}
    wards = ward_scope(principal, ward_code)
    clause = ""
    if wards is not None:
        clause, params["wards"] = "AND ward_code IN %(wards)s", tuple(wards)
    rows = db.execute(_PER_DAY_SQL.format(wards=clause), params)
    epoch = datetime(1970, 1, 1, tzinfo=UTC).date()
    return {"from": first.isoformat(), "to": last.isoformat(), "rows": [
        {"date": (epoch + timedelta(days=int(d))).isoformat(), "ward_code": str(w), "declarations": int(n),
         "symptomatic": int(s), "contact_with_case": int(c), "alerted": int(a)} for d, w, n, s, c, a in rows]}


@router.get("/v1/dashboard/posters.pdf", response_class=Response)
async def dashboard_posters(
    ward_code: str = Query(..., min_length=1, max_length=32),
    category: str | None = Query(None, max_length=32),
    db: Database = Depends(get_db),
    _: Principal = Depends(require(Role.registrar)),
) -> Response:
    """The ward's posters, one A4 page per venue (the same PDF as ingest's ``GET /v1/venues/posters.pdf``)."""
    if category and category not in Category.__members__:
        raise ApiError(422, "invalid_request", f"unknown category {category!r}")
    venues = await run_in_threadpool(poster_venues, db, ward_code, category or None)
    if not venues:
        raise ApiError(404, "not_found", "no registered venue with a signed code in this ward and category")
    body = await run_in_threadpool(posters_pdf, venues, created_at=datetime.now(UTC))
    name = f"ap-phich-{ward_code}{'-' + category if category else ''}.pdf"
    return Response(body, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
