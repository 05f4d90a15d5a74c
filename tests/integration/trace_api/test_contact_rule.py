"""The trace API against the plain-Python reference of the contract's contact rule.

Visits are written straight into the test database's ``visits`` table (the materialized view fills
``visits_by_venue``), cases are registered and traced over HTTP. Named edge cases first, then
generated scenarios (hypothesis) that hit the same edges at random.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.trace_api.conftest import T0, TraceClient, assert_matches, insert_visits
from tests.unit.trace_api.reference import MINUTE, RefVisit, expected_contacts
from truyvet.auth import Role

H = 60 * MINUTE


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture()
def tracer(profile, http: httpx.Client) -> TraceClient:  # noqa: ANN001
    """The named cases run on both profiles (issue 12): the single-node stack and the cluster."""
    return TraceClient(http, profile.services.trace_url, dict(profile.token(Role.epidemiologist)), profile.db,
                       f"t{uuid.uuid4().hex[:8]}-")


def _tracer(services, db, epi_headers, client) -> TraceClient:  # noqa: ANN001
    return TraceClient(client, services.trace_url, epi_headers, db, f"t{uuid.uuid4().hex[:8]}-")


def _run(t: TraceClient, visits: list[RefVisit], case: str, start: int, end: int, *, window: int = 60,
         min_overlap: int = 0, insert: bool = True) -> dict[int, list[dict[str, object]]]:
    """Insert, register, trace at depth 1 and 2, and check both against the reference."""
    if insert:
        insert_visits(t.db, visits)
    case_id = t.case(case, start, end)
    got = {}
    for depth in (1, 2):
        contacts = t.contacts(case_id, depth=depth, window_minutes=window, min_overlap_minutes=min_overlap)
        assert_matches(contacts, expected_contacts(visits, case, start, end, window=window * MINUTE,
                                                   min_overlap=min_overlap * MINUTE, depth=depth))
        got[depth] = contacts
    return got


def _v(t: TraceClient, person: str, venue: str, t_in: int, t_out: int) -> RefVisit:
    return RefVisit(uuid.uuid4().hex, t.pid(person), t.pid(venue), t_in, t_out)


def test_exactly_w_apart_is_included_one_second_more_is_not(tracer: TraceClient) -> None:
    t = tracer
    a_in, a_out = T0, T0 + 30 * MINUTE
    visits = [
        _v(t, "case", "V", a_in, a_out),
        _v(t, "after_w", "V", a_out + H, a_out + 2 * H),  # arrives exactly W after the case left
        _v(t, "after_w_1s", "V", a_out + H + 1, a_out + 2 * H),
        _v(t, "before_w", "V", a_in - 2 * H, a_in - H),  # left exactly W before the case came
        _v(t, "before_w_1s", "V", a_in - 2 * H, a_in - H - 1),
    ]
    got = _run(t, visits, t.pid("case"), T0 - 24 * H, T0 + 24 * H)
    assert sorted(c["person_id"] for c in got[1]) == [t.pid("after_w"), t.pid("before_w")]
    assert all(e["overlap_minutes"] == 0 for c in got[1] for e in c["exposures"])


def test_zero_overlap_within_window_and_minimum_overlap(tracer: TraceClient) -> None:
    t = tracer
    visits = [
        _v(t, "case", "V", T0, T0 + 30 * MINUTE),
        _v(t, "ten_min", "V", T0 + 40 * MINUTE, T0 + 50 * MINUTE),  # never together; within W for 10 min
    ]
    got = _run(t, visits, t.pid("case"), T0, T0 + H)
    assert [c["person_id"] for c in got[1]] == [t.pid("ten_min")]
    assert got[1][0]["exposures"][0]["overlap_minutes"] == 0
    assert _run(t, visits, t.pid("case"), T0, T0 + H, min_overlap=10, insert=False)[1]  # exactly M
    assert not _run(t, visits, t.pid("case"), T0, T0 + H, min_overlap=11, insert=False)[1]


def test_case_never_listed_and_lowest_generation(tracer: TraceClient) -> None:
    t = tracer
    visits = [
        _v(t, "case", "V", T0, T0 + H),
        _v(t, "case", "V", T0 + 10 * MINUTE, T0 + 20 * MINUTE),  # the case's own overlapping visit
        _v(t, "f1a", "V", T0 + 30 * MINUTE, T0 + 2 * H),
        _v(t, "f1b", "V", T0 + 50 * MINUTE, T0 + 3 * H),
        # f1a and f1b meet each other and the case again at W: both stay generation 1
        _v(t, "f1a", "W", T0 + 4 * H, T0 + 5 * H),
        _v(t, "f1b", "W", T0 + 4 * H, T0 + 5 * H),
        _v(t, "case", "W", T0 + 4 * H, T0 + 5 * H),
        _v(t, "f2", "W", T0 + 5 * H + 30 * MINUTE, T0 + 6 * H),  # met f1a/f1b/case at W: F1 (the case)
        _v(t, "f2only", "X", T0 + 7 * H, T0 + 8 * H),
        _v(t, "f1b", "X", T0 + 7 * H + 30 * MINUTE, T0 + 8 * H),  # f2only met only f1b: generation 2
    ]
    got = _run(t, visits, t.pid("case"), T0, T0 + 10 * H)
    gens = {c["person_id"]: (c["generation"], c["via_person_id"]) for c in got[2]}
    assert gens == {t.pid("f1a"): (1, None), t.pid("f1b"): (1, None), t.pid("f2"): (1, None),
                    t.pid("f2only"): (2, t.pid("f1b"))}


def test_several_exposures_of_one_person_all_listed(tracer: TraceClient) -> None:
    t = tracer
    visits = [
        _v(t, "case", "V", T0, T0 + 20 * MINUTE),
        _v(t, "case", "V", T0 + 2 * H, T0 + 2 * H + 20 * MINUTE),
        _v(t, "case", "W", T0 + 5 * H, T0 + 6 * H),
        _v(t, "b", "V", T0 + 10 * MINUTE, T0 + 2 * H + 5 * MINUTE),  # meets both case visits at V
        _v(t, "b", "V", T0 + 3 * H, T0 + 3 * H + 10 * MINUTE),  # 40 min after the second: within W
        _v(t, "b", "W", T0 + 5 * H, T0 + 5 * H + 1),
    ]
    got = _run(t, visits, t.pid("case"), T0, T0 + 6 * H)
    assert len(got[1][0]["exposures"]) == 4


def test_depth_two_period_starts_at_earliest_exposure(tracer: TraceClient) -> None:
    t = tracer
    visits = [
        _v(t, "case", "V", T0 + 2 * H, T0 + 3 * H),
        _v(t, "f1", "V", T0 + 2 * H + 30 * MINUTE, T0 + 3 * H),
        _v(t, "f1", "X", T0 + H, T0 + 2 * H),  # before the F1's exposure: not infectious there
        _v(t, "early", "X", T0 + H, T0 + 2 * H),
        _v(t, "f1", "Y", T0 + 4 * H, T0 + 5 * H),  # after it, before the case's end: infectious
        _v(t, "late", "Y", T0 + 6 * H, T0 + 6 * H + 1),  # exactly W after
    ]
    got = _run(t, visits, t.pid("case"), T0, T0 + 10 * H)
    assert {c["person_id"]: c["generation"] for c in got[2]} == {t.pid("f1"): 1, t.pid("late"): 2}


# --- generated scenarios -------------------------------------------------------------------------

PEOPLE = ["case", "p1", "p2", "p3", "p4", "p5"]
VENUES = ["V", "W"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[str, str, int, int]], int, int, int, int]:
    """Visits on a minute grid (with +-1 s jitter) so that 'exactly W' and 'W + 1 s' happen often."""
    jitter = st.sampled_from([0, 0, 0, 1, -1])
    n = draw(st.integers(2, 14))
    visits = []
    for i in range(n):
        person = "case" if i < 2 else draw(st.sampled_from(PEOPLE))
        venue = draw(st.sampled_from(VENUES))
        t_in = T0 + draw(st.integers(0, 16)) * 15 * MINUTE + draw(jitter)
        length = draw(st.sampled_from([0, 1, 10 * MINUTE, 30 * MINUTE, H, 2 * H])) + draw(jitter)
        visits.append((person, venue, t_in, t_in + max(0, length)))
    start = T0 + draw(st.sampled_from([0, 30, 60, 120])) * MINUTE
    end = start + draw(st.sampled_from([0, 60, 120, 240, 600])) * MINUTE
    window = draw(st.sampled_from([0, 15, 60]))
    min_overlap = draw(st.sampled_from([0, 0, 5, 30]))
    return visits, start, end, window, min_overlap


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(scenario=scenarios())
def test_generated_scenarios_match_reference(services, db, epi_headers, client, scenario) -> None:  # noqa: ANN001
    raw, start, end, window, min_overlap = scenario
    t = _tracer(services, db, epi_headers, client)
    visits = [_v(t, p, v, a, b) for p, v, a, b in raw]
    _run(t, visits, t.pid("case"), start, end, window=window, min_overlap=min_overlap)
