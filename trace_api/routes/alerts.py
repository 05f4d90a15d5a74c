"""Alerts and their delivery state (docs/api.md, "Trace API": ``GET /v1/alerts``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from trace_api.deps import get_db
from truyvet.auth import Principal, Role
from truyvet.events import UtcSecond
from truyvet.schema.db import Database
from truyvet.web import ApiError, require

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


class Delivery(BaseModel):
    status: str  # pending | retrying | delivered | dead_lettered
    attempts: int


class AlertPublic(BaseModel):
    alert_id: str
    case_id: str
    person_id: str
    generation: int
    ward_code: str
    venue_id: str
    created_at: datetime
    delivery: Delivery


class AlertsPage(BaseModel):
    alerts: list[AlertPublic]


def list_alerts(
    db: Database, *, ward_code: str | None, case_id: str | None, since: datetime | None, limit: int
) -> list[AlertPublic]:
    """Newest first. Filters are on columns that never change for an alert, so they hold under FINAL."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if ward_code is not None:
        where.append("ward_code = %(ward)s")
        params["ward"] = ward_code
    if case_id is not None:
        where.append("case_id = %(case)s")
        params["case"] = case_id
    if since is not None and since.year >= 1970:  # earlier than DateTime's range: no bound at all
        where.append("created_at >= %(since)s")
        params["since"] = min(since, datetime(2100, 1, 1, tzinfo=UTC))  # later: nothing, but no 500
    rows = db.execute(
        "SELECT alert_id, case_id, person_id, generation, ward_code, venue_id, created_at, status, attempts "
        "FROM alerts FINAL"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY created_at DESC, alert_id LIMIT %(limit)s",
        params,
    )
    return [
        AlertPublic(
            alert_id=a,
            case_id=c,
            person_id=p,
            generation=int(g),
            ward_code=w,
            venue_id=v,
            created_at=t.astimezone(UTC),
            delivery=Delivery(status=s, attempts=int(n)),
        )
        for a, c, p, g, w, v, t, s, n in rows
    ]


@router.get("", response_model=AlertsPage)
def get_alerts(
    ward_code: str | None = Query(None, max_length=64),
    case_id: str | None = Query(None, max_length=64),
    since: UtcSecond | None = Query(None, description="RFC 3339; alerts created at or after it"),
    limit: int = Query(1000, ge=1, le=10_000),
    db: Database = Depends(get_db),
    principal: Principal = Depends(require(Role.epidemiologist, Role.health_center)),
) -> AlertsPage:
    """Alerts with their delivery state, newest first (a health center sees its own ward's only)."""
    if principal.role == Role.health_center:
        if ward_code is not None and ward_code != principal.ward_code:
            raise ApiError(403, "forbidden", "a health center sees only its own ward's alerts")
        ward_code = principal.ward_code
    return AlertsPage(alerts=list_alerts(db, ward_code=ward_code, case_id=case_id, since=since, limit=limit))
