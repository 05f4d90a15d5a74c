"""Citizens on the real stack (docs/api.md, "Follow-up and people"): the app's pseudonymous id is a scan's
person_id as it is (HTTP and Kafka doors); its own exposure under the trace's semantics, late scans
included, without anyone's id; a phone given with consent is read only by the health center that may
read that person, every read audited; taken back, no one reads it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from ingest.persons import save_details
from tests.integration.alerts.receiver import wait_for
from tests.integration.alerts.test_alert_delivery import _person, _post_scans, _register, _scan, _venue, _visits_of
from tests.integration.followups.test_followup_lists import new_ward
from trace_api.audit import audit_table
from truyvet.auth import Role
from truyvet.scan import ParsedScan, parse_scan

pytestmark = pytest.mark.integration



def register_citizen(http: httpx.Client, url: str) -> tuple[str, dict[str, str]]:
    """A new citizen (honouring 429 Retry-After, as the app does): (person_id, auth headers)."""
    deadline = time.monotonic() + 60
    while True:
        r = http.post(f"{url}/v1/citizens")
        if r.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(float(r.headers["Retry-After"]))
    assert r.status_code == 201, r.text
    body = r.json()
    return body["person_id"], {"Authorization": f"Bearer {body['secret']}"}


def _follow_ups(http: httpx.Client, url: str, headers, case_id: str) -> dict[str, dict]:
    r = http.get(f"{url}/v1/follow-ups", headers=headers, params={"case_id": case_id})
    assert r.status_code == 200, r.text
    return {f["person_id"]: f for f in r.json()["follow_ups"]}


def test_a_citizen_sees_their_exposure_and_gives_a_phone_only_their_health_center_reads(
        services, db, token, http) -> None:
    ward, other_ward = new_ward(db), new_ward(db, "Phường Thử Khác")
    url = services.trace_url
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    mine, theirs = token(Role.health_center, ward), token(Role.health_center, other_ward)
    me, auth = register_citizen(http, url)
    other, other_auth = register_citizen(http, url)
    late_me, late_auth = register_citizen(http, url)
    assert me != other and db.execute("SELECT count() FROM citizens WHERE person_id = %(p)s AND secret_hash = %(h)s",
                                      {"p": me, "h": auth["Authorization"][7:]})[0][0] == 0  # stored hashed

    # The app's id is a person_id both doors accept as it is.
    scan = _scan("v1", me, datetime.now(UTC))
    assert isinstance(parse_scan(orjson.dumps(scan)), ParsedScan)

    v1, v2 = _venue(http, services, registrar, ward), _venue(http, services, registrar, ward)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=8)
    case, f1 = _person(), _person()
    _post_scans(http, services, device, [
        _scan(v1, case, t0), _scan(v1, case, t0 + timedelta(minutes=40), "out"),
        _scan(v1, me, t0 + timedelta(minutes=10)),                      # me: F1 at v1
        _scan(v1, f1, t0 + timedelta(minutes=15)),
        _scan(v2, f1, t0 + timedelta(hours=3)), _scan(v2, other, t0 + timedelta(hours=3, minutes=5)),  # F2
    ])
    wait_for(lambda: _visits_of(db, [case, me, f1, other]) == {case, me, f1, other}, timeout=60, what="visits")
    assert http.get(f"{url}/v1/me/exposure", headers=auth).json()["status"] == "none"
    case_id = _register(http, services, epi, case, now)

    def exposure(headers: dict[str, str]) -> dict:
        r = http.get(f"{url}/v1/me/exposure", headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    mine_now = wait_for(lambda: (e := exposure(auth))["status"] == "f1" and e, timeout=30, what="me as F1")
    (exp,) = mine_now["exposures"]
    local_day = (t0 + timedelta(minutes=10)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()
    assert exp["venue_name"] == f"Quán {ward}" and exp["ward_name"] and exp["date"] == local_day
    assert exp["case_visit"] == {"t_in": t0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "t_out": (t0 + timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert mine_now["advice"]
    f2_now = wait_for(lambda: (e := exposure(other_auth))["status"] == "f2" and e, timeout=30, what="other as F2")
    for answer in (mine_now, f2_now):  # never anyone's id, never who the case is
        text = orjson.dumps(answer).decode()
        assert not [p for p in (case, f1, me, other, case_id) if p in text], text

    # A late scan makes a citizen an F1 without anyone re-running the trace.
    assert exposure(late_auth)["status"] == "none"
    _post_scans(http, services, device, [_scan(v1, late_me, t0 + timedelta(minutes=30))])
    wait_for(lambda: exposure(late_auth)["status"] == "f1", timeout=30, what="late citizen as F1")

    # Bad or missing secrets; consent must be given.
    assert http.get(f"{url}/v1/me/exposure").status_code == 401
    assert http.get(f"{url}/v1/me/exposure", headers={"Authorization": "Bearer tvc_wrong"}).status_code == 401
    r = http.put(f"{url}/v1/me/contact", headers=auth, json={"phone": "0912 345 678", "consent": False})
    assert r.status_code == 422
    assert http.put(f"{url}/v1/me/contact", headers=auth, json={"phone": "=1+1", "consent": True}).status_code == 422

    # The phone: the health center of the ward the contact belongs to reads it (audited); no one else.
    r = http.put(f"{url}/v1/me/contact", headers=auth, json={"phone": "0912 345 678", "consent": True})
    assert r.status_code == 200 and r.json() == {"phone": "0912345678", "consent": True}
    wait_for(lambda: me in _follow_ups(http, url, mine, case_id), timeout=30, what="me on the list")
    assert _follow_ups(http, url, mine, case_id)[me]["phone"] == "0912345678"
    assert _follow_ups(http, url, mine, case_id)[f1]["phone"] is None  # no phone given
    assert _follow_ups(http, url, epi, case_id)[me]["phone"] is None  # not the health center
    assert _follow_ups(http, url, theirs, case_id) == {}
    reads = db.execute(f"SELECT actor, ward_code, params FROM {audit_table(db)} WHERE action = 'person.phone_read' "
                       "AND case_id = %(c)s", {"c": case_id})
    assert reads and all(orjson.loads(p) == {"persons": [me]} and w == ward for _, w, p in reads)

    # A residence known elsewhere wins over the exposure venue's ward: this ward no longer reads it.
    save_details(db, [(me, "Nguyễn Văn Thử", "1990-01-01", "Nam", "Xã Thử", other_ward, "test", datetime.now(UTC))])
    assert _follow_ups(http, url, mine, case_id)[me]["phone"] is None
    db.execute("ALTER TABLE person_wards DELETE WHERE person_id = %(p)s", {"p": me})
    wait_for(lambda: _follow_ups(http, url, mine, case_id)[me]["phone"] == "0912345678", timeout=30,
             what="details removed")

    # Taken back: no one reads it.
    assert http.delete(f"{url}/v1/me/contact", headers=auth).status_code == 204
    assert _follow_ups(http, url, mine, case_id)[me]["phone"] is None


def test_registration_is_rate_limited(services) -> None:
    """Registrations from one address beyond the burst are refused with 429 and Retry-After. Sent from
    127.0.0.2 (loopback too): the limit is per address, so other tests' registrations are not held up."""
    codes = []
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=30) as http:
        for _ in range(60):
            r = http.post(f"{services.trace_url}/v1/citizens")
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "rate_limited"
                break
    assert codes[-1] == 429 and set(codes[:-1]) == {201} and len(codes) > 1, codes
    r = httpx.post(f"{services.trace_url}/v1/citizens", timeout=30)  # another address: not held up
    assert r.status_code == 201, r.text
