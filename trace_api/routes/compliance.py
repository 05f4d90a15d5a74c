"""Compliance by establishment and its roll-ups (docs/api.md, "Compliance"): thin over trace_api/compliance.py."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import ORJSONResponse, Response

from trace_api import compliance
from trace_api.compliance_export import compliance_csv, compliance_pdf, compliance_xlsx
from trace_api.deps import get_db
from trace_api.reports import READERS, VIETNAM_OFFSET_MINUTES, parse_day, ward_names, ward_scope
from truyvet.auth import Principal
from truyvet.events import Category
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(prefix="/v1/reports/compliance", tags=["reports"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TREND_DAYS = 28


def _category(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return Category(value).value
    except ValueError:
        raise ApiError(422, "invalid_request", f"unknown category {value!r}") from None


def _silent(request: Request, value: int | None) -> int:
    return value or request.app.state.settings.compliance_silent_days


@router.get("")
def get_compliance(
    request: Request,
    ward_code: str | None = Query(None, max_length=32),
    date_: str | None = Query(None, alias="date", description="YYYY-MM-DD (local day); default today"),
    format_: str = Query("json", alias="format", pattern="^(json|csv|xlsx|pdf)$"),
    category: str | None = Query(None, max_length=32, description="one venue category (e.g. school)"),
    status: str | None = Query(None, pattern="^(not_registered|silent|scanning)$"),
    silent_days: int | None = Query(None, ge=1, le=28, description="default 3 (TRACE_COMPLIANCE_SILENT_DAYS)"),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> Response:
    """Every establishment on the roster with not_registered / silent / scanning, its venues and last scan."""
    day = parse_day(date_, VIETNAM_OFFSET_MINUTES)
    rows = compliance.compliance(db, day, wards=ward_scope(principal, ward_code), category=_category(category),
                                 silent_days=_silent(request, silent_days), utc_offset_minutes=VIETNAM_OFFSET_MINUTES,
                                 max_stay_minutes=request.app.state.settings.max_stay_minutes)
    if status:
        rows = [r for r in rows if r.status == status]
    if format_ == "json":
        return ORJSONResponse({"date": day.isoformat(), "establishments": [asdict(r) for r in rows]})
    names = ward_names(db)
    stem = f"tuan-thu-{ward_code or 'tat-ca'}-{day.isoformat()}"
    if format_ == "csv":
        body, media = compliance_csv(rows, names), "text/csv; charset=utf-8"
    elif format_ == "xlsx":
        body, media = compliance_xlsx(rows, names, day), XLSX
    else:
        body, media = compliance_pdf(rows, names, day, _category(category)), "application/pdf"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{stem}.{format_}"'})


@router.get("/summary")
def get_compliance_summary(
    request: Request,
    date_: str | None = Query(None, alias="date"),
    level: str = Query("ward", pattern="^(ward|district|province)$"),
    category: str | None = Query(None, max_length=32),
    by_category: bool = Query(False, description="one row per unit and category (the education division's view)"),
    silent_days: int | None = Query(None, ge=1, le=28),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> dict[str, object]:
    """Counts of establishments per status rolled up the units' hierarchy (ward, district, province)."""
    day = parse_day(date_, VIETNAM_OFFSET_MINUTES)
    rows = compliance.compliance(db, day, wards=ward_scope(principal, None), category=_category(category),
                                 silent_days=_silent(request, silent_days), utc_offset_minutes=VIETNAM_OFFSET_MINUTES,
                                 max_stay_minutes=request.app.state.settings.max_stay_minutes)
    return {"date": day.isoformat(), "level": level,
            "units": compliance.summary(rows, compliance.unit_tree(db), level, by_category)}


@router.get("/trend")
def get_compliance_trend(
    request: Request,
    ward_code: str | None = Query(None, max_length=32),
    to: str | None = Query(None, description="last day, YYYY-MM-DD (default today)"),
    days: int = Query(TREND_DAYS, ge=1, le=62),
    category: str | None = Query(None, max_length=32),
    silent_days: int | None = Query(None, ge=1, le=28),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> dict[str, object]:
    """Per day (default the last 28): establishments not_registered, silent and scanning (the dashboard's chart)."""
    last = parse_day(to, VIETNAM_OFFSET_MINUTES)
    series = compliance.trend(db, last, days, wards=ward_scope(principal, ward_code), category=_category(category),
                              silent_days=_silent(request, silent_days), utc_offset_minutes=VIETNAM_OFFSET_MINUTES,
                              max_stay_minutes=request.app.state.settings.max_stay_minutes)
    return {"from": (last - timedelta(days=days - 1)).isoformat(), "to": last.isoformat(), "days": series}
