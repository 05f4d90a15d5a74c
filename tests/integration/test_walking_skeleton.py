"""A scan travels HTTP → Kafka → faust → ClickHouse → trace API, with the contract's shapes."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from truyvet.auth import Role


def _scan(venue: str, person: str, at: datetime, direction: str = "in") -> dict[str, str]:
    return {"scan_id": str(uuid.uuid4()), "scanned_at": at.isoformat(), "direction": direction,
            "venue_id": venue, "person_id": person}


def test_scan_to_traced_contact(services, token, http: httpx.Client) -> None:
    registrar, device, epi = token(Role.registrar), token(Role.device), token(Role.epidemiologist)
    r = http.post(f"{services.ingest_url}/v1/venues", headers=registrar,
                  json={"name": "Chợ Đức Xuân", "category": "market_shop", "ward_code": "01840"})
    assert r.status_code == 201, r.text
    venue = r.json()["venue_id"]
    now = datetime.now(UTC).replace(microsecond=0)
    case, contact, later = (f"p{uuid.uuid4().hex[:10]}" for _ in range(3))
    scans = [
        _scan(venue, case, now - timedelta(hours=3)),
        _scan(venue, case, now - timedelta(hours=2, minutes=30), "out"),
        _scan(venue, contact, now - timedelta(hours=2, minutes=50)),
        _scan(venue, later, now - timedelta(hours=1)),  # arrives 90 min after the case left: beyond W
    ]
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=scans)
    assert r.status_code == 202 and r.json() == {"accepted": 4, "duplicates": 0, "rejected": []}

    r = http.post(f"{services.trace_url}/v1/cases", headers=epi,
                  json={"person_id": case, "infectious_from": (now - timedelta(days=1)).isoformat(),
                        "infectious_to": now.isoformat()})
    assert r.status_code == 201, r.text
    case_id = r.json()["case_id"]

    deadline, contacts = time.monotonic() + 60, []
    while time.monotonic() < deadline and not contacts:
        r = http.get(f"{services.trace_url}/v1/cases/{case_id}/contacts", headers=epi)
        assert r.status_code == 200, r.text
        contacts = r.json()["contacts"]
        time.sleep(0.2)
    assert [c["person_id"] for c in contacts] == [contact]
    (exposure,) = contacts[0]["exposures"]
    assert contacts[0]["generation"] == 1 and contacts[0]["ward_code"] == "01840"
    assert exposure["venue_id"] == venue
    rfc = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert exposure["case_visit"] == {"t_in": rfc(now - timedelta(hours=3)),
                                      "t_out": rfc(now - timedelta(hours=2, minutes=30))}
    assert exposure["overlap_minutes"] == 20.0


def test_missing_or_wrong_token_is_401_and_wrong_role_403(services, token, http: httpx.Client) -> None:
    assert http.post(f"{services.ingest_url}/v1/scans", json={}).status_code == 401
    r = http.post(f"{services.ingest_url}/v1/scans", json={}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = http.post(f"{services.ingest_url}/v1/scans", json={}, headers=token(Role.viewer))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
