"""Follow-up lists on the real stack (docs/api.md, "Follow-up and people"): every contact of every case lands
on its ward's list as ``new`` (also one found later by a late scan), a health center works only its ward's
list, every change keeps who and when and is audited, and a contact who tested positive is registered as
a new case from the list, which is traced from them at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.alerts.receiver import wait_for
from tests.integration.alerts.test_alert_delivery import _person, _post_scans, _register, _scan, _venue, _visits_of
from trace_api.audit import audit_table
from truyvet.auth import Role
from truyvet.events import Alert
from truyvet.followups import COLUMNS, changed_row, new_row

pytestmark = pytest.mark.integration

WARD, OTHER = "01834", "01837"


def _list(http: httpx.Client, services, headers, **params: object) -> dict[tuple[str, str], dict]:
    r = http.get(f"{services.trace_url}/v1/follow-ups", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return {(f["case_id"], f["person_id"]): f for f in r.json()["follow_ups"]}


def _audit(db, action: str, case_id: str) -> list[tuple]:
    return db.execute(f"SELECT actor, role, ward_code, params FROM {audit_table(db)} WHERE action = %(a)s "
                      "AND case_id = %(c)s", {"a": action, "c": case_id})


def test_contacts_land_on_their_wards_list_and_are_worked_there(services, db, token, http) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    mine, theirs = token(Role.health_center, WARD), token(Role.health_center, OTHER)
    v1, v2 = _venue(http, services, registrar, WARD), _venue(http, services, registrar, WARD)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=10)
    case, f1, met_f1, late = (_person() for _ in range(4))
    _post_scans(http, services, device, [
        _scan(v1, case, t0), _scan(v1, case, t0 + timedelta(minutes=30), "out"),
        _scan(v1, f1, t0 + timedelta(minutes=5)),
        _scan(v2, f1, t0 + timedelta(hours=3)), _scan(v2, met_f1, t0 + timedelta(hours=3, minutes=5)),
    ])
    wait_for(lambda: _visits_of(db, [case, f1, met_f1]) == {case, f1, met_f1}, timeout=60, what="visits written")
    case_id = _register(http, services, epi, case, now)

    # Every contact (F1 and F2) is on the ward's list as new; a late scan's contact joins it.
    wait_for(lambda: set(_list(http, services, mine, case_id=case_id)) == {(case_id, f1), (case_id, met_f1)},
             timeout=30, what="the registration's contacts on the list")
    _post_scans(http, services, device, [_scan(v1, late, t0 + timedelta(minutes=20))])
    listed = wait_for(lambda: (x := _list(http, services, mine, case_id=case_id)).get((case_id, late)) and x,
                      timeout=30, what="the late contact on the list")
    assert {p: (f["generation"], f["status"], f["ward_code"]) for (_, p), f in listed.items()} == {
        f1: (1, "new", WARD), met_f1: (2, "new", WARD), late: (1, "new", WARD)}
    assert set(_list(http, services, mine, case_id=case_id, generation=2)) == {(case_id, met_f1)}
    assert set(_list(http, services, epi, ward_code=WARD, case_id=case_id)) == set(listed)

    # Another ward's health center: neither this list nor its records.
    r = http.get(f"{services.trace_url}/v1/follow-ups", headers=theirs, params={"ward_code": WARD})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert _list(http, services, theirs, case_id=case_id) == {}
    r = http.put(f"{services.trace_url}/v1/follow-ups/{case_id}/{f1}", headers=theirs, json={"status": "called"})
    assert r.status_code == 403, r.text
    r = http.put(f"{services.trace_url}/v1/follow-ups/{case_id}/nobody", headers=mine, json={"status": "called"})
    assert r.status_code == 404
    r = http.put(f"{services.trace_url}/v1/follow-ups/{case_id}/{f1}", headers=mine, json={"status": "sick"})
    assert r.status_code == 422

    # A change keeps who and when, and is audited; the status filter and the counts follow it.
    before = datetime.now(UTC).replace(microsecond=0)
    r = http.put(f"{services.trace_url}/v1/follow-ups/{case_id}/{f1}", headers=mine,
                 json={"status": "called", "note": "Đã gọi, hẹn xét nghiệm"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["status"], changed["note"], changed["updated_by"]) == ("called", "Đã gọi, hẹn xét nghiệm",
                                                                           "test-health_center")
    assert datetime.fromisoformat(changed["updated_at"].replace("Z", "+00:00")) >= before
    r = http.put(f"{services.trace_url}/v1/follow-ups/{case_id}/{f1}", headers=mine, json={"status": "tested_positive"})
    assert r.json()["note"] == "Đã gọi, hẹn xét nghiệm"  # a change without a note keeps it
    assert set(_list(http, services, mine, case_id=case_id, status="tested_positive")) == {(case_id, f1)}
    r = http.get(f"{services.trace_url}/v1/follow-ups", headers=mine, params={"case_id": case_id})
    assert {k: v for k, v in r.json()["counts"].items() if v} == {"new": 2, "tested_positive": 1}
    changes = _audit(db, "followup.update", case_id)
    assert sorted(str(p) for *_, p in changes) == sorted([
        '{"from":"new","note_changed":true,"person_id":"' + f1 + '","to":"called"}',
        '{"from":"called","note_changed":false,"person_id":"' + f1 + '","to":"tested_positive"}'])
    assert {(a, r, w) for a, r, w, _ in changes} == {("test-health_center", "health_center", WARD)}
    assert _audit(db, "followup.list", case_id)

    # Tested positive: registered as a case from the list; it is traced from them (met_f1 is its F1).
    r = http.post(f"{services.trace_url}/v1/follow-ups/{case_id}/{met_f1}/case", headers=mine,
                  json={"infectious_from": (now - timedelta(days=2)).isoformat(), "infectious_to": now.isoformat()})
    assert r.status_code == 409  # only tested_positive
    r = http.post(f"{services.trace_url}/v1/follow-ups/{case_id}/{f1}/case", headers=mine,
                  json={"infectious_from": (now - timedelta(days=2)).isoformat(), "infectious_to": now.isoformat()})
    assert r.status_code == 201, r.text
    new_case = r.json()["case_id"]
    assert _list(http, services, mine, case_id=case_id)[(case_id, f1)]["new_case_id"] == new_case
    wait_for(lambda: {(p, f["generation"]) for (_, p), f in _list(http, services, mine, case_id=new_case).items()}
             >= {(met_f1, 1)}, timeout=30, what="the new case's contacts on the list")
    r = http.get(f"{services.trace_url}/v1/cases/{new_case}/contacts", headers=epi)
    assert met_f1 in {c["person_id"] for c in r.json()["contacts"]}


def test_a_change_is_never_undone_by_the_record_written_again(any_db) -> None:
    """The dispatcher writes ``new`` (version 0) whenever it reads an alert, also again after a restart."""
    case, person = f"case_{uuid.uuid4().hex[:8]}", f"p{uuid.uuid4().hex[:8]}"
    alert = Alert(alert_id="al_x", case_id=case, person_id=person, generation=1, ward_code="W1", venue_id="v",
                  created_at=datetime(2026, 11, 30, 8, tzinfo=UTC))
    any_db.insert("follow_ups", COLUMNS, [new_row(alert)])
    current = dict(zip(COLUMNS, new_row(alert), strict=True))
    any_db.insert("follow_ups", COLUMNS, [changed_row(current, status="quarantined", note="", by="hc")])
    any_db.insert("follow_ups", COLUMNS, [new_row(alert), new_row(alert)])
    rows = any_db.execute("SELECT status, updated_by FROM follow_ups FINAL WHERE case_id = %(c)s", {"c": case})
    assert rows == [("quarantined", "hc")]
