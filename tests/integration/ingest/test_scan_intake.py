"""Scan intake over HTTP: per-item reasons, batch limits, resend idempotency, per-token rate limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.ingest.conftest import scan
from truyvet.auth import Role

ID = "036095004217"


@pytest.fixture(scope="module")
def venue(services, token) -> str:
    with httpx.Client(timeout=30) as http:
        r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                      json={"name": "Siêu thị Huyền Tụng", "category": "mall_supermarket",
                            "ward_code": "01846"})
        assert r.status_code == 201, r.text
        return str(r.json()["venue_id"])


def test_one_bad_item_of_every_kind_is_listed_and_the_good_ones_accepted(services, token, venue: str,
                                                                         http: httpx.Client) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    good = [scan(venue, f"p{uuid.uuid4().hex[:8]}") for _ in range(5)]
    bad = {
        "bad JSON types": scan(venue, "p1", direction=7),
        "not an object": ["scan", "as", "list"],
        "unknown venue": scan("vdoesnotexist", "p1"),
        "future time": scan(venue, "p1", at=now + timedelta(minutes=10)),
        "too old": scan(venue, "p1", at=now - timedelta(days=40)),
        "bad person id": scan(venue, "not a valid id!"),
        "bad CCCD text": {**{k: v for k, v in scan(venue, "x").items() if k != "person_id"},
                          "cccd_qr": f"{ID}|Nguyễn Văn B|01011990"},
        "no scan_id": {k: v for k, v in scan(venue, "p1").items() if k != "scan_id"},
    }
    items: list[object] = [good[0], good[1]]
    for item in bad.values():
        items.extend([item, good.pop() if len(good) > 2 else scan(venue, f"p{uuid.uuid4().hex[:8]}")])
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json={"scans": items})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == len(items) - len(bad) and body["duplicates"] == 0
    rejected = {row["index"]: row for row in body["rejected"]}
    assert sorted(rejected) == [2 + 2 * i for i in range(len(bad))]
    reasons = [rejected[2 + 2 * i]["error"] for i in range(len(bad))]
    expected = ["direction", "JSON object", "unknown venue", "future", "retention", "person_id", "cccd_qr",
                "scan_id"]
    for reason, want in zip(reasons, expected, strict=True):
        assert want in reason
    assert rejected[2]["scan_id"] == bad["bad JSON types"]["scan_id"]  # type: ignore[index]
    assert ID not in r.text


def test_over_size_batch_is_413(services, token, http: httpx.Client) -> None:
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json=[{}] * 10_001)
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"


def test_not_json_is_400_and_not_a_list_is_422(services, token, http: httpx.Client) -> None:
    device = token(Role.device)
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, content=b"{nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json={"scans": 5})
    assert r.status_code == 422


def test_resending_the_same_scan_ids_counts_duplicates(services, token, venue: str,
                                                       http: httpx.Client) -> None:
    device = token(Role.device)
    batch = [scan(venue, f"p{uuid.uuid4().hex[:8]}") for _ in range(3)]
    first = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=batch + [batch[0]])
    assert first.json() == {"accepted": 3, "duplicates": 1, "rejected": []}
    again = http.post(f"{services.ingest_url}/v1/scans/batch", headers=device, json=batch)
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    single = http.post(f"{services.ingest_url}/v1/scans", headers=device, json=batch[1])
    assert single.status_code == 202 and single.json()["duplicates"] == 1


def test_rate_limit_per_token_answers_429_with_retry_after(services, token, http: httpx.Client) -> None:
    """Cheap requests (invalid items) drain one token's bucket; another token is unaffected."""
    greedy, other = token(Role.device), token(Role.device)
    statuses = []
    for _ in range(20):
        r = http.post(f"{services.ingest_url}/v1/scans/batch", headers=greedy, json=[0] * 10_000)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {202}
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["code"] == "rate_limited"
    assert http.post(f"{services.ingest_url}/v1/scans/batch", headers=other, json=[0]).status_code == 202


def test_revoked_token_is_refused_within_the_cache_window(services, token, venue: str, http: httpx.Client) -> None:
    import time

    from click.testing import CliRunner

    from truyvet.cli import cli

    device = token(Role.device)
    assert http.post(f"{services.ingest_url}/v1/scans", headers=device, json=scan(venue, "prev")).status_code == 202
    prefix = device["Authorization"].removeprefix("Bearer ")[:10]
    result = CliRunner().invoke(cli, ["token", "revoke", prefix])
    assert result.exit_code == 0 and "revoked 1" in result.output, result.output
    deadline, status = time.monotonic() + 20, 202
    while status != 401 and time.monotonic() < deadline:
        status = http.post(f"{services.ingest_url}/v1/scans", headers=device, json=scan(venue, "prev")).status_code
        time.sleep(0.2)
    assert status == 401


def test_scan_outside_the_venues_validity_window_is_rejected(services, token, http: httpx.Client) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    r = http.post(f"{services.ingest_url}/v1/venues", headers=token(Role.registrar),
                  json={"name": "Hội nghị tổng kết", "category": "meeting", "ward_code": "01834",
                        "valid_from": (now - timedelta(hours=3)).isoformat(),
                        "valid_until": (now - timedelta(hours=1)).isoformat()})
    venue = r.json()["venue_id"]
    items = [scan(venue, "m1", at=now - timedelta(hours=2)), scan(venue, "m2", at=now - timedelta(minutes=30)),
             scan(venue, "m3", at=now - timedelta(hours=4))]
    body = http.post(f"{services.ingest_url}/v1/scans/batch", headers=token(Role.device), json=items).json()
    assert body["accepted"] == 1
    assert [(x["index"], x["error"]) for x in body["rejected"]] == [
        (1, "scanned_at: after the venue's validity window"), (2, "scanned_at: before the venue's validity window")]
