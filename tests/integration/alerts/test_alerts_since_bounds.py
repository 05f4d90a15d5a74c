"""`since` outside ClickHouse's DateTime range is an answer, not a 500 (found by schemathesis)."""

from __future__ import annotations

import httpx

from truyvet.auth import Role


def test_since_far_past_or_future_answers_200(services, token, http: httpx.Client) -> None:
    epi = token(Role.epidemiologist)
    for since in ("0312-03-13T21:55:25+19:31", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"):
        r = http.get(f"{services.trace_url}/v1/alerts", params={"since": since}, headers=epi)
        assert r.status_code == 200, (since, r.text)
        assert isinstance(r.json()["alerts"], list)
    r = http.get(f"{services.trace_url}/v1/alerts", params={"since": "9999-12-31T23:59:59Z"}, headers=epi)
    assert r.json()["alerts"] == []
