"""Helpers for the trace API tests: visits written straight into ClickHouse, cases and traces over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.unit.trace_api.reference import RefContact, RefExposure, RefVisit
from truyvet.auth import Role
from truyvet.schema.db import Database

VISIT_COLUMNS = ["visit_id", "person_id", "venue_id", "t_in", "t_out", "source_in", "source_out", "version",
                 "deleted", "written_at"]
VENUE_COLUMNS = ["venue_id", "name", "category", "ward_code", "address", "phone", "default_stay_minutes",
                 "valid_from", "valid_until", "created_at", "updated_at"]
T0 = int(datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp())


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def iso(seconds: int) -> str:
    return ts(seconds).isoformat().replace("+00:00", "Z")


def insert_visits(db: Database, visits: Iterable[RefVisit]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("visits", VISIT_COLUMNS, [(v.visit_id, v.person_id, v.venue_id, ts(v.t_in), ts(v.t_out), "", "", 1, 0,
                                         now) for v in visits])


def insert_venue(db: Database, venue_id: str, *, ward: str, name: str = "Quán", category: str = "food_drink") -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    db.insert("venues", VENUE_COLUMNS, [(venue_id, name, category, ward, "", "", 0, ts(0), ts(0), now, now)])


def api_exposures(contact: dict[str, Any]) -> list[RefExposure]:
    return sorted((e["venue_id"], epoch(e["case_visit"]["t_in"]), epoch(e["case_visit"]["t_out"]),
                   epoch(e["contact_visit"]["t_in"]), epoch(e["contact_visit"]["t_out"]), e["overlap_minutes"])
                  for e in contact["exposures"])


def assert_matches(contacts: list[dict[str, Any]], expected: dict[str, RefContact]) -> None:
    """The API's contacts list equals the reference: same persons once each, generation, via, exposures."""
    got = {c["person_id"]: c for c in contacts}
    assert len(got) == len(contacts), "a person is listed twice"
    assert sorted(got) == sorted(expected)
    for person, c in got.items():
        want = expected[person]
        assert c["generation"] == want.generation, person
        if want.generation == 1:
            assert c["via_person_id"] is None
        assert c["via_person_id"] in want.through, (person, c["via_person_id"], list(want.through))
        assert api_exposures(c) == want.through[c["via_person_id"]], person


@dataclass
class TraceClient:
    """One scenario's view of the trace API, with its own id prefix so scenarios never meet."""

    http: httpx.Client
    url: str
    headers: dict[str, str]
    db: Database
    prefix: str

    def pid(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def case(self, person: str, start: int, end: int, headers: dict[str, str] | None = None) -> str:
        r = self.http.post(f"{self.url}/v1/cases", headers=headers or self.headers,
                           json={"person_id": person, "infectious_from": iso(start), "infectious_to": iso(end)})
        assert r.status_code == 201, r.text
        return str(r.json()["case_id"])

    def contacts(self, case_id: str, headers: dict[str, str] | None = None, **params: Any) -> list[dict[str, Any]]:
        r = self.http.get(f"{self.url}/v1/cases/{case_id}/contacts", headers=headers or self.headers,
                          params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["contacts"])


@pytest.fixture(scope="session")
def epi_headers(token) -> dict[str, str]:  # noqa: ANN001 - conftest factory fixture
    return dict(token(Role.epidemiologist))


@pytest.fixture()
def tracer(services, db: Database, epi_headers: dict[str, str], http: httpx.Client) -> TraceClient:  # noqa: ANN001
    return TraceClient(http, services.trace_url, epi_headers, db, f"t{uuid.uuid4().hex[:8]}-")


@pytest.fixture(scope="session")
def admin_headers(token) -> dict[str, str]:  # noqa: ANN001
    return dict(token(Role.admin))
