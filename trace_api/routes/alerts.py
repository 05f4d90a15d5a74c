"""Alerts and their delivery state (docs/api.md, "Trace API": ``GET /v1/alerts``): thin over trace_api/alerts.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from trace_api import export
from trace_api.alerts import AlertsPage, export_table, list_alerts, ward_of_reader
from trace_api.deps import get_db
from truyvet.auth import Principal, Role
from truyvet.events import UtcSecond
from truyvet.schema.db import Database
from truyvet.web import require

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.get("", response_model=AlertsPage, responses={200: {"content": {
    "text/csv": {"schema": {"type": "string"}}, export.XLSX_MEDIA: {"schema": {"type": "string", "format": "binary"}}},
    "description": "JSON, or a CSV / xlsx export with format=csv|xlsx (issue 14)"}})
def get_alerts(
    ward_code: str | None = Query(None, max_length=64),
    case_id: str | None = Query(None, max_length=64),
    since: UtcSecond | None = Query(None, description="RFC 3339; alerts created at or after it"),
    limit: int = Query(1000, ge=1, le=10_000),
    format: Literal["json", "csv", "xlsx"] = Query("json"),  # noqa: A002 - the contract's parameter name
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.epidemiologist, Role.health_center)),
) -> AlertsPage | Response:
    """Alerts with their delivery state, newest first (a health center sees its own ward's only)."""
    ward = ward_of_reader(principal, ward_code)
    alerts = list_alerts(db, ward_code=ward, case_id=case_id, since=since, limit=limit)
    if format != "json":
        return export.response(export_table(alerts, ward), format)
    return AlertsPage(alerts=alerts)
