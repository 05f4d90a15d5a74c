"""Rollout coverage reports (docs/api.md ``GET /v1/reports/coverage``): thin over trace_api/reports.py."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import ORJSONResponse, Response

from trace_api import export
from trace_api.deps import get_db
from trace_api.reports import (
    MAX_TREND_DAYS,
    READERS,
    VIETNAM_OFFSET_MINUTES,
    coverage,
    parse_day,
    totals,
    trend,
    ward_scope,
)
from truyvet.auth import Principal
from truyvet.schema.db import Database
from truyvet.web import require

router = APIRouter(prefix="/v1/reports", tags=["reports"])
# The export's columns (docs/api.md, "Exports"): the local day, then per ward and category.
COVERAGE_HEADER = ["Ngày", "Mã phường/xã", "Phường/xã", "Loại hình", "Phải quét", "Đã đăng ký", "Có quét",
                   "Lượt quét"]


@router.get("/coverage")
def get_coverage(
    request: Request,
    date_: str | None = Query(None, alias="date", description="YYYY-MM-DD (local day); default today"),
    format_: str = Query("json", alias="format", pattern="^(json|csv|xlsx)$"),
    ward_code: str | None = Query(None, max_length=32),
    utc_offset_minutes: int = Query(VIETNAM_OFFSET_MINUTES, ge=-14 * 60, le=14 * 60),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> Response:
    """Per ward and category: establishments that must scan, registered venues, venues active that day."""
    day = parse_day(date_, utc_offset_minutes)
    rows = coverage(db, day, max_stay_minutes=request.app.state.settings.max_stay_minutes,
                    utc_offset_minutes=utc_offset_minutes, wards=ward_scope(principal, ward_code))
    if format_ != "json":
        return export.response(export.Table(COVERAGE_HEADER, [
            [day.isoformat(), r.ward_code, r.ward_name, r.category, r.required, r.registered, r.active, r.scans]
            for r in rows], f"coverage-{day.isoformat()}"), format_)
    return ORJSONResponse({"date": day.isoformat(), "utc_offset_minutes": utc_offset_minutes,
                           "rows": [asdict(r) for r in rows], "totals": asdict(totals(rows))})


@router.get("/coverage/trend")
def get_coverage_trend(
    request: Request,
    to: str | None = Query(None, description="last day, YYYY-MM-DD (default today)"),
    days: int = Query(7, ge=1, le=MAX_TREND_DAYS),
    ward_code: str | None = Query(None, max_length=32),
    utc_offset_minutes: int = Query(VIETNAM_OFFSET_MINUTES, ge=-14 * 60, le=14 * 60),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(*READERS)),
) -> dict[str, object]:
    """Coverage totals for each of the ``days`` days ending ``to`` (an addition to the contract)."""
    last = parse_day(to, utc_offset_minutes)
    first = last - timedelta(days=days - 1)
    return {"days": trend(db, first, last, max_stay_minutes=request.app.state.settings.max_stay_minutes,
                          utc_offset_minutes=utc_offset_minutes, wards=ward_scope(principal, ward_code))}
