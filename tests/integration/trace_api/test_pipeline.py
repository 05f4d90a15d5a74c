"""Through the real pipeline (HTTP ingest -> Kafka -> worker -> ClickHouse -> trace API): the visit
rules that shape a trace, the cut at the next venue and the orphan ``out``, to the second."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.integration.trace_api.conftest import epoch, iso
from truyvet.auth import Role
from truyvet.schema.db import Database


def _scan(venue: str, person: str, at: datetime, direction: str = "in") -> dict[str, str]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
            "venue_id": venue, "person_id": person}


def test_next_venue_cut_and_orphan_out_shape_the_contacts(services, token, db: Database,
                                                          http: httpx.Client) -> None:  # noqa: ANN001
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    venues = {}
    for key, stay in (("A", 60), ("B", 60), ("C", 30)):
        r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                      json={"name": f"Quán {key}", "category": "food_drink", "ward_code": "01840",
                            "default_stay_minutes": stay})
        assert r.status_code == 201, r.text
        venues[key] = r.json()["venue_id"]
    n = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    p = {k: f"pp{uuid.uuid4().hex[:10]}" for k in ("case", "cut_w", "cut_w1", "orphan_w", "orphan_w1")}
    h, m, s = timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)
    scans = [
        _scan(venues["A"], p["case"], n - 5 * h),
        _scan(venues["B"], p["case"], n - 4 * h - 40 * m),  # cuts the A visit: [n-5h, n-4h40m]
        _scan(venues["B"], p["case"], n - 4 * h - 20 * m, "out"),
        _scan(venues["C"], p["case"], n - 2 * h, "out"),  # orphan out: [n-2h30m, n-2h]
        _scan(venues["A"], p["cut_w"], n - 3 * h - 40 * m),  # exactly W after the cut
        _scan(venues["A"], p["cut_w1"], n - 3 * h - 40 * m + s),  # one second more (in W of the uncut stay)
        _scan(venues["C"], p["orphan_w"], n - 4 * h),  # [n-4h, n-3h30m]: left exactly W before
        _scan(venues["C"], p["orphan_w1"], n - 4 * h - s),
    ]
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=scans)
    assert r.status_code == 202 and r.json()["accepted"] == len(scans), r.text

    def z(t: datetime) -> str:
        return t.isoformat().replace("+00:00", "Z")

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        rows = db.execute("SELECT person_id, t_in, t_out, deleted FROM visits FINAL WHERE person_id IN %(p)s",
                          {"p": tuple(p.values())})
        live = {(str(pid), int(a.timestamp()), int(b.timestamp())) for pid, a, b, gone in rows if not gone}
        if len(live) == 7 and (p["case"], epoch(z(n - 5 * h)), epoch(z(n - 4 * h - 40 * m))) in live:
            break
        time.sleep(0.2)
    r = http.post(f"{services.trace_url}/v1/cases", headers=epi,
                  json={"person_id": p["case"], "infectious_from": iso(epoch((n - 6 * h).isoformat())),
                        "infectious_to": n.isoformat()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]
    r = http.get(f"{services.trace_url}/v1/cases/{case_id}/contacts", headers=epi)
    assert r.status_code == 200, r.text
    got = {c["person_id"]: [(e["venue_id"], e["case_visit"], e["overlap_minutes"]) for e in c["exposures"]]
           for c in r.json()["contacts"]}

    assert got == {
        p["cut_w"]: [(venues["A"], {"t_in": z(n - 5 * h), "t_out": z(n - 4 * h - 40 * m)}, 0.0)],
        p["orphan_w"]: [(venues["C"], {"t_in": z(n - 2 * h - 30 * m), "t_out": z(n - 2 * h)}, 0.0)],
    }
    # At depth 2 the one-second-late visitors are there, but as contacts of the F1 they met.
    r = http.get(f"{services.trace_url}/v1/cases/{case_id}/contacts", headers=epi, params={"depth": 2})
    assert {c["person_id"]: (c["generation"], c["via_person_id"]) for c in r.json()["contacts"]} == {
        p["cut_w"]: (1, None), p["orphan_w"]: (1, None), p["cut_w1"]: (2, p["cut_w"]),
        p["orphan_w1"]: (2, p["orphan_w"])}
