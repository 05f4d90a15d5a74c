"""Reads of contacts, alerts, case lists and personal details are audited and scoped (issue 13, item 10).

- ``GET /v1/alerts`` and the dashboard's case list write an audit entry (who, what, how many);
- personal details are read only with a ``reason`` (422 without one), on both routes that give them;
- a health center never sees the person id of another ward's resident as ``via_person_id``;
- ``/v1/dashboard/places`` names only the venues the reader may see, and takes at most 1000 ids of at
  most 64 characters.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ingest.persons import save_details
from tests.integration.trace_api.conftest import T0, TraceClient, insert_venue, insert_visits
from tests.unit.trace_api.reference import MINUTE, RefVisit
from truyvet.auth import Role, create_token

H = 60 * MINUTE
WARD_A, WARD_B, WARD_C = "01840", "01837", "01834"
ALERT_COLUMNS = ["alert_id", "case_id", "person_id", "generation", "ward_code", "venue_id", "created_at", "status",
                 "attempts", "last_error", "delivered_at", "updated_at", "version"]


def _headers(t: TraceClient, role: Role, ward: str = "") -> tuple[dict[str, str], str]:
    name = f"{t.prefix}{role.value}"
    return {"Authorization": f"Bearer {create_token(t.db, role=role, ward_code=ward, name=name)}"}, name


def _lives(t: TraceClient, person: str, ward: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    save_details(t.db, [(person, "Lý Thị Hoa", "1980-05-06", "Nữ", f"phường {ward}",
                                                    ward, "test", now)])


def _audit(t: TraceClient, action: str, actor: str) -> list[dict[str, object]]:
    admin, _ = _headers(t, Role.admin)
    r = t.http.get(f"{t.url}/v1/audit", headers=admin, params={"action": action, "actor": actor})
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


def test_alert_lists_and_case_lists_are_audited(tracer: TraceClient) -> None:
    t = tracer
    hc, hc_name = _headers(t, Role.health_center, WARD_A)
    r = t.http.get(f"{t.url}/v1/alerts", headers=hc, params={"limit": 5})
    assert r.status_code == 200, r.text
    (entry,) = _audit(t, "alerts.read", hc_name)
    assert entry["ward_code"] == WARD_A and entry["params"]["ward_code"] == WARD_A
    assert entry["result_count"] == len(r.json()["alerts"])

    epi, epi_name = _headers(t, Role.epidemiologist)
    t.case(t.pid("case"), T0, T0 + H, headers=epi)
    r = t.http.get(f"{t.url}/v1/dashboard/cases", headers=epi, params={"limit": 3})
    assert r.status_code == 200 and r.json()
    (entry,) = _audit(t, "cases.list", epi_name)
    assert entry["result_count"] == len(r.json()) and entry["params"] == {"limit": 3}


def test_personal_details_need_a_reason(tracer: TraceClient) -> None:
    t = tracer
    person = t.pid("p")
    _lives(t, person, WARD_A)
    case_id = t.case(t.pid("case"), T0, T0 + H)
    hc, _ = _headers(t, Role.health_center, WARD_A)
    for params in ({}, {"reason": ""}, {"reason": "   "}):
        r = t.http.get(f"{t.url}/v1/persons/{person}", headers=hc, params=params)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (params, r.text)
        r = t.http.get(f"{t.url}/v1/cases/{case_id}/contacts", headers=hc, params={"include": "personal", **params})
        assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required", (params, r.text)
    r = t.http.get(f"{t.url}/v1/persons/{person}", headers=hc, params={"reason": "gọi điện hỏi triệu chứng"})
    assert r.status_code == 200 and r.json()["full_name"] == "Lý Thị Hoa"


def test_a_health_center_does_not_see_another_wards_resident_as_via(tracer: TraceClient) -> None:
    t = tracer
    v1, v2 = t.pid("v1"), t.pid("v2")
    insert_venue(t.db, v1, ward=WARD_A)
    insert_venue(t.db, v2, ward=WARD_A)
    case, f1, f2 = t.pid("case"), t.pid("f1_lives_b"), t.pid("f2_lives_a")
    insert_visits(t.db, [
        RefVisit(uuid.uuid4().hex, case, v1, T0, T0 + H),
        RefVisit(uuid.uuid4().hex, f1, v1, T0 + 10 * MINUTE, T0 + 30 * MINUTE),
        RefVisit(uuid.uuid4().hex, f1, v2, T0 + 2 * H, T0 + 3 * H),
        RefVisit(uuid.uuid4().hex, f2, v2, T0 + 2 * H + 10 * MINUTE, T0 + 2 * H + 40 * MINUTE),
    ])
    _lives(t, f1, WARD_B)
    _lives(t, f2, WARD_A)
    case_id = t.case(case, T0, T0 + 5 * H)
    epi = {c["person_id"]: c["via_person_id"] for c in t.contacts(case_id, depth=2)}
    assert epi == {f1: None, f2: f1}
    hc, _ = _headers(t, Role.health_center, WARD_A)
    seen = t.contacts(case_id, headers=hc, depth=2)
    assert [(c["person_id"], c["generation"], c["via_person_id"]) for c in seen] == [(f2, 2, None)]
    hc_b, _ = _headers(t, Role.health_center, WARD_B)
    assert [(c["person_id"], c["via_person_id"]) for c in t.contacts(case_id, headers=hc_b, depth=2)] == [(f1, None)]


def test_places_are_scoped_to_the_reader_and_bounded(tracer: TraceClient) -> None:
    t = tracer
    mine, alerted, elsewhere = t.pid("mine"), t.pid("alerted"), t.pid("elsewhere")
    insert_venue(t.db, mine, ward=WARD_A, name="Quán A")
    insert_venue(t.db, alerted, ward=WARD_B, name="Chợ B")
    insert_venue(t.db, elsewhere, ward=WARD_C, name="Nhà C")
    now = datetime.now(UTC).replace(microsecond=0)
    t.db.insert("alerts", ALERT_COLUMNS, [(t.pid("alert"), t.pid("case"), t.pid("p"), 1, WARD_A, alerted, now,
                                           "delivered", 1, "", now, now, 1)])
    ids = {"venue_ids": [mine, alerted, elsewhere]}

    def named(headers: dict[str, str]) -> set[str]:
        r = t.http.post(f"{t.url}/v1/dashboard/places", headers=headers, json=ids)
        assert r.status_code == 200, r.text
        assert r.json()["wards"][WARD_C], "ward names are public units: everyone gets them"
        return set(r.json()["venues"])

    assert named(_headers(t, Role.epidemiologist)[0]) == {mine, alerted, elsewhere}
    assert named(_headers(t, Role.health_center, WARD_A)[0]) == {mine, alerted}
    assert named(_headers(t, Role.health_center, WARD_C)[0]) == {elsewhere}
    assert named(_headers(t, Role.viewer)[0]) == set()
    epi = _headers(t, Role.epidemiologist)[0]
    for body in ({"venue_ids": [f"v{i}" for i in range(1001)]}, {"venue_ids": ["v" * 65]},
                 {"venue_ids": ["a b"]}):
        r = t.http.post(f"{t.url}/v1/dashboard/places", headers=epi, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
