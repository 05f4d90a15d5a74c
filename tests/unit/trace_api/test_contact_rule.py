"""The trace algorithm (trace_api/contacts.py + tracing.py) against the reference, many scenarios, in memory.

The reads here select by the same bounds as the SQL in trace_api/queries.py, from a list; the real
reads on ClickHouse are checked by tests/integration/trace_api/ (both engines, and over HTTP).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.trace_api.reference import MINUTE, RefVisit, expected_contacts
from trace_api import queries
from trace_api.contacts import TraceParams, trace
from truyvet.events import Visit

H = 60 * MINUTE
T0 = 1_795_000_000


class ListReads:
    def __init__(self, visits: list[RefVisit]) -> None:
        self.rows = [Visit(v.visit_id, v.person_id, v.venue_id, v.t_in, v.t_out) for v in visits]

    def person_visits(self, _db: object, persons: Sequence[str], start: int, end: int, max_stay: int) -> list[Visit]:
        return [v for v in self.rows if v.person_id in persons and start - max_stay <= v.t_in <= end
                and v.t_out >= start]

    def venue_visits(self, _db: object, spans: Sequence[Visit], window: int, max_stay: int) -> list[Visit]:
        ranges = queries.venue_ranges(spans, window, max_stay)
        return [v for v in self.rows if any(v.venue_id == r[0] and r[1] <= v.t_in <= r[2] for r in ranges)]

    def venue_categories(self, _db: object, _ids: object) -> dict[str, str]:
        return {}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[RefVisit], int, int, int, int]:
    jitter = st.sampled_from([0, 0, 1, -1])
    visits = []
    for i in range(draw(st.integers(1, 25))):
        person = "case" if i < 2 else draw(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]))
        t_in = T0 + draw(st.integers(0, 24)) * 15 * MINUTE + draw(jitter)
        length = max(0, draw(st.sampled_from([0, 1, 10 * MINUTE, H, 3 * H])) + draw(jitter))
        visits.append(RefVisit(f"v{i}", person, draw(st.sampled_from(["V", "W", "X"])), t_in, t_in + length))
    start = T0 + draw(st.integers(0, 8)) * 30 * MINUTE
    end = start + draw(st.sampled_from([0, H, 4 * H, 12 * H]))
    return visits, start, end, draw(st.sampled_from([0, 15, 60])) * MINUTE, draw(st.sampled_from([0, 5, 30])) * MINUTE


def _shown(c: object) -> tuple[int, str | None, list[tuple[object, ...]]]:
    exps = sorted((e.venue_id, e.case_visit.t_in, e.case_visit.t_out, e.contact_visit.t_in,  # type: ignore[attr-defined]
                   e.contact_visit.t_out, round(e.overlap_seconds / 60, 2)) for e in c.exposures)  # type: ignore[attr-defined]
    return c.generation, c.via_person_id, exps  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None)
@given(scenario=scenarios(), depth=st.sampled_from([1, 2]))
def test_trace_equals_reference(scenario: tuple[list[RefVisit], int, int, int, int], depth: int) -> None:
    visits, start, end, window, min_overlap = scenario
    result = trace(None, person_id="case", start=start, end=end,  # type: ignore[arg-type]
                   params=TraceParams(depth=depth, window=window, min_overlap=min_overlap, max_stay=24 * H),
                   reads=ListReads(visits))
    want = expected_contacts(visits, "case", start, end, window=window, min_overlap=min_overlap, depth=depth)
    got = {c.person_id: _shown(c) for c in result.contacts}
    assert len(got) == len(result.contacts) and "case" not in got
    assert sorted(got) == sorted(want)
    for person, (generation, via, exposures) in got.items():
        assert generation == want[person].generation
        assert via in want[person].through and exposures == want[person].through[via]


def test_venue_ranges_merge_only_overlapping_spans() -> None:
    spans = [Visit("1", "c", "V", 1000, 2000), Visit("2", "c", "V", 2500, 2600),
             Visit("3", "c", "V", 100_000, 100_100), Visit("4", "c", "W", 0, 10)]
    assert queries.venue_ranges(spans, 100, 500) == [("V", 400, 2700), ("V", 99_400, 100_200), ("W", -600, 110)]


def test_contact_as_plain_data_matches_the_documented_schema() -> None:
    from trace_api.cases import contact_item
    from trace_api.contacts import Contact
    from trace_api.models import ContactOut
    from trace_api.tracing import Exposure

    a, b = Visit("a", "case", "V", T0, T0 + H), Visit("b", "x", "V", T0 + 90, T0 + 2 * H + 59)
    data = contact_item(Contact("x", 2, "f1", [Exposure("V", a, b, H - 90)]), "01840", None)
    out = ContactOut.model_validate(data)
    assert out.exposures[0].overlap_minutes == 58.5 and out.via_person_id == "f1"
    assert data["exposures"][0]["contact_visit"] == {"t_in": "2026-11-18T11:08:10Z", "t_out": "2026-11-18T13:07:39Z"}
