"""The alert SQL runs on ClickHouse 18.16 (server) and current ClickHouse (chdb) with the same answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingest.persons import save_details
from streams.alerting.delivery import ALERT_COLUMNS, Status, alert_row, known_states
from streams.alerting.webhooks import set_webhook, webhooks
from trace_api.alerts import list_alerts
from truyvet.alerts import addressee_wards, residence_wards
from truyvet.events import Alert

pytestmark = pytest.mark.integration


def _alert(case: str, person: str, ward: str, created: datetime) -> Alert:
    return Alert(
        alert_id=f"al_{uuid.uuid4().hex[:12]}",
        case_id=case,
        person_id=person,
        generation=1,
        ward_code=ward,
        venue_id="ven_1",
        created_at=created,
    )


def test_alert_listing_takes_the_latest_state_filters_and_orders_newest_first(any_db) -> None:
    case = f"case_{uuid.uuid4().hex[:8]}"
    t = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    old, new, other = (
        _alert(case, "p1", "W1", t),
        _alert(case, "p2", "W1", t + timedelta(minutes=5)),
        _alert(case, "p3", "W2", t + timedelta(minutes=1)),
    )
    rows = [
        alert_row(old, status=Status.PENDING, attempts=0, version=1),
        alert_row(old, status=Status.RETRYING, attempts=3, error="HTTP 503", version=2),
        alert_row(old, status=Status.DELIVERED, attempts=4, delivered_at=t, version=3),
        alert_row(new, status=Status.PENDING, attempts=0, version=5),
        alert_row(other, status=Status.DEAD_LETTERED, attempts=12, version=7),
    ]
    any_db.insert("alerts", ALERT_COLUMNS, rows[::-1])

    listed = list_alerts(any_db, ward_code=None, case_id=case, since=None, limit=100)
    assert [(a.person_id, a.delivery.status, a.delivery.attempts) for a in listed] == [
        ("p2", "pending", 0),
        ("p3", "failed", 12),  # dead-lettered: listed as failed (contract v2)
        ("p1", "delivered", 4),
    ]
    assert listed[0].created_at == t + timedelta(minutes=5)
    assert [
        a.person_id for a in list_alerts(any_db, ward_code="W1", case_id=case, since=None, limit=100)
    ] == ["p2", "p1"]
    assert [
        a.person_id
        for a in list_alerts(any_db, ward_code=None, case_id=case, since=t + timedelta(minutes=1), limit=100)
    ] == ["p2", "p3"]
    assert len(list_alerts(any_db, ward_code=None, case_id=case, since=None, limit=1)) == 1
    assert known_states(any_db, [old.alert_id, new.alert_id, "al_unknown"]) == {
        old.alert_id: "delivered",
        new.alert_id: "pending",
    }


def test_webhooks_replace_per_ward_and_residence_wins_over_venue(any_db) -> None:
    ward = f"W{uuid.uuid4().hex[:6]}"
    set_webhook(any_db, ward_code=ward, url="http://127.0.0.1:1/a", secret="first-secret-0123456789")
    set_webhook(any_db, ward_code=ward, url="http://127.0.0.1:1/b", secret="second-secret-0123456789")
    hook = webhooks(any_db)[ward]
    assert (hook.url, hook.secret) == ("http://127.0.0.1:1/b", "second-secret-0123456789")

    venue, resident, visitor = (f"x{uuid.uuid4().hex[:10]}" for _ in range(3))
    now = datetime.now(UTC).replace(microsecond=0)
    any_db.insert(
        "venues",
        [
            "venue_id",
            "name",
            "category",
            "ward_code",
            "address",
            "phone",
            "default_stay_minutes",
            "valid_from",
            "valid_until",
            "created_at",
            "updated_at",
        ],
        [(venue, "Chợ", "market_shop", "VENUE_WARD", "", "", 0, now, now, now, now)],
    )
    save_details(any_db, [(resident, "", "", "", "", "HOME_WARD", "test", now)])
    assert residence_wards(any_db, [resident, visitor]) == {resident: "HOME_WARD"}
    assert addressee_wards(any_db, {resident: venue, visitor: venue}) == {
        resident: "HOME_WARD",
        visitor: "VENUE_WARD",
    }
