"""The streaming matcher's rule agrees with the contract's contact rule; windows, exclusions, expiry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.alerting.windows import VenueWindows, qualifies
from trace_api.tracing import exposure
from truyvet.events import ExposureWindow, Visit

H = 3600


def window(
    t_in: int,
    t_out: int,
    *,
    case: str = "case_1",
    generation: int = 1,
    via: str | None = None,
    w: int = H,
    m: int = 0,
    expires: int = 10**10,
    visit: str = "v_case",
) -> ExposureWindow:
    return ExposureWindow(
        case_id=case,
        case_person_id="pc",
        generation=generation,
        via_person_id=via,
        venue_id="V",
        visit_id=visit,
        t_in=t_in,
        t_out=t_out,
        window=w,
        min_overlap=m,
        case_end=t_out + 10 * H,
        expires_at=expires,
    )


def visit(person: str, t_in: int, t_out: int, venue: str = "V") -> Visit:
    return Visit(
        visit_id=f"v_{person}_{t_in}", person_id=person, venue_id=venue, t_in=t_in, t_out=t_out
    )


spans = st.tuples(st.integers(0, 20 * H), st.integers(0, 6 * H)).map(lambda p: (p[0], p[0] + p[1]))


@given(a=spans, b=spans, w=st.integers(0, 2 * H), m=st.integers(0, 2 * H))
def test_the_matcher_rule_is_the_contract_rule(
    a: tuple[int, int], b: tuple[int, int], w: int, m: int
) -> None:
    contract = exposure(Visit("a", "pc", "V", *a), Visit("b", "pb", "V", *b), window=w, min_overlap=m)
    assert qualifies(window(*a, w=w, m=m), visit("pb", *b)) == (contract is not None)


def test_boundaries_are_closed_to_the_second() -> None:
    w = window(10 * H, 11 * H)
    assert qualifies(w, visit("p", 12 * H, 13 * H))  # arrives exactly W after the case left
    assert not qualifies(w, visit("p", 12 * H + 1, 13 * H))
    assert qualifies(w, visit("p", 8 * H, 9 * H))  # leaves exactly W before the case came
    assert not qualifies(w, visit("p", 8 * H, 9 * H - 1))
    assert not qualifies(w, visit("p", 10 * H, 11 * H, venue="other"))


def test_min_overlap_counts_the_widened_window() -> None:
    w = window(10 * H, 11 * H, m=30 * 60)
    assert qualifies(w, visit("p", 11 * H + 30 * 60, 13 * H))  # 30 min inside [t_in - W, t_out + W]
    assert not qualifies(w, visit("p", 11 * H + 31 * 60, 13 * H))


def test_the_case_and_the_generation_one_source_are_never_contacts() -> None:
    windows = VenueWindows(
        [window(10 * H, 11 * H), window(10 * H, 11 * H, generation=2, via="pf1", visit="v2")]
    )
    assert windows.matches(visit("pc", 10 * H, 11 * H)) == []
    (only,) = windows.matches(visit("pf1", 10 * H, 11 * H))
    assert only.window.generation == 1
    found = windows.matches(visit("someone", 10 * H, 11 * H))
    assert [m.window.generation for m in found] == [1, 2]  # lowest generation first


def test_windows_are_added_once_updated_in_place_and_expire() -> None:
    windows = VenueWindows()
    assert windows.add(window(10 * H, 11 * H, expires=100))
    assert not windows.add(window(10 * H, 11 * H, expires=100))  # the same window again
    assert windows.add(window(10 * H, 12 * H, expires=100))  # its source visit was extended
    assert len(windows.windows) == 1 and windows.windows[0].t_out == 12 * H
    assert windows.add(window(10 * H, 11 * H, case="case_2", expires=200))
    assert windows.prune(now=150) == 1
    assert [w.case_id for w in windows.windows] == ["case_2"]
    assert VenueWindows.from_json(windows.to_json()).windows == windows.windows
