"""Alerts and their delivery state as the trace API lists them (``GET /v1/alerts``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from trace_api import export
from truyvet.auth import Principal, Role
from truyvet.events import Alert
from truyvet.schema.db import Database
from truyvet.web import ApiError


class Delivery(BaseModel):
    status: str  # pending | retrying | delivered | failed (retries exhausted; `truyvet alerts resend`)
    attempts: int


# The dispatcher records an alert whose retries are spent as dead_lettered (it is on alerts-dlq); the
# contract lists it as failed.
SHOWN_STATUS = {"dead_lettered": "failed"}


class AlertPublic(Alert):
    """The alert (``truyvet.events.Alert``, as raised and delivered) with its delivery state."""

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
        "SELECT alert_id, case_id, person_id, generation, ward_code, venue_id, created_at, status, attempts, kind "
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
            delivery=Delivery(status=SHOWN_STATUS.get(s, s), attempts=int(n)),
            kind=k,
        )
        for a, c, p, g, w, v, t, s, n, k in rows
    ]


def ward_of_reader(principal: Principal, ward_code: str | None) -> str | None:
    """The ward filter a caller gets: a health center only its own (asking for another is 403)."""
    if principal.role == Role.health_center:
        if ward_code is not None and ward_code != principal.ward_code:
            raise ApiError(403, "forbidden", "a health center sees only its own ward's alerts")
        return principal.ward_code
    return ward_code


EXPORT_HEADER = ["Mã cảnh báo", "Mã ca bệnh", "Mã người", "Cấp (F)", "Mã phường/xã", "Mã địa điểm", "Tạo lúc",
                 "Trạng thái gửi", "Số lần gửi"]
DELIVERY_VI = {"pending": "chờ gửi", "retrying": "đang thử lại", "delivered": "đã gửi", "failed": "gửi thất bại"}


def export_table(alerts: list[AlertPublic], ward: str | None) -> export.Table:
    """The alerts as an export (docs/api.md, "Exports": Vietnamese headers, local time)."""
    return export.Table(EXPORT_HEADER, [
        [a.alert_id, a.case_id, a.person_id, a.generation, a.ward_code, a.venue_id, export.local_time(a.created_at),
         DELIVERY_VI.get(a.delivery.status, a.delivery.status), a.delivery.attempts] for a in alerts],
        f"alerts-{ward or 'all'}")
