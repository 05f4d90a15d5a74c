"""The contact rule (truyvet/contact.py; docs/tracing.md) applied to visits: pairs, per person, depth 2.

ClickHouse narrows the candidates with primary-key range reads (queries.py); the exact rule,
to the second and with closed intervals, is applied here. Times are integer epoch seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from truyvet.contact import meets, overlap_seconds
from truyvet.events import Visit

WindowFor = Callable[[str], int]  # venue_id -> exposure window W in seconds


@dataclass(frozen=True)
class Exposure:
    venue_id: str
    case_visit: Visit
    contact_visit: Visit
    overlap_seconds: int


def exposure(a: Visit, b: Visit, *, window: int, min_overlap: int) -> Exposure | None:
    """Does visit ``b`` qualify as an exposure to case visit ``a``? (:func:`truyvet.contact.meets`)"""
    if a.venue_id != b.venue_id or not meets(a.t_in, a.t_out, b.t_in, b.t_out, window=window, min_overlap=min_overlap):
        return None
    return Exposure(a.venue_id, a, b, overlap_seconds(a.t_in, a.t_out, b.t_in, b.t_out))


def overlapping(visits: Iterable[Visit], start: int, end: int) -> list[Visit]:
    """Visits overlapping the closed interval ``[start, end]`` (none when the interval is empty)."""
    if start > end:
        return []
    return [v for v in visits if v.t_in <= end and v.t_out >= start]


def constant(window: int) -> WindowFor:
    return lambda _venue: window


def exposure_order(e: Exposure) -> tuple[int, int, str, str, str]:
    return (e.contact_visit.t_in, e.case_visit.t_in, e.venue_id, e.contact_visit.visit_id, e.case_visit.visit_id)


def matches(
    sources: list[Visit],
    candidates: Iterable[Visit],
    *,
    exclude: set[str],
    window: int | WindowFor,
    min_overlap: int,
    max_visit: int | None = None,
) -> Iterator[Exposure]:
    """Every qualifying (source visit, candidate visit) pair, once per distinct candidate visit.

    :param window: W in seconds, or a function of the venue (per-category windows).
    :param max_visit: the longest a source visit lasts, if known: only sources starting in
        ``[b.t_in - W - max_visit, b.t_out + W]`` can meet ``b``, found by bisection.
    """
    window_for = constant(window) if isinstance(window, int) else window
    by_venue: dict[str, list[Visit]] = {}
    for a in sources:
        by_venue.setdefault(a.venue_id, []).append(a)
    starts: dict[str, list[int]] = {}
    for venue, visits in by_venue.items():
        visits.sort(key=lambda v: v.t_in)
        starts[venue] = [v.t_in for v in visits]
    seen: set[tuple[str, str]] = set()
    for b in candidates:
        here = by_venue.get(b.venue_id)
        if here is None or b.person_id in exclude or (b.person_id, b.visit_id) in seen:
            continue
        seen.add((b.person_id, b.visit_id))
        w = window_for(b.venue_id)
        t_ins = starts[b.venue_id]
        lo = 0 if max_visit is None else bisect_left(t_ins, b.t_in - w - max_visit)
        hi = bisect_right(t_ins, b.t_out + w)
        b_in, b_out = b.t_in, b.t_out
        # truyvet.contact.meets inlined: this loop is most of a large trace's Python time (a property test
        # holds it equal to the definition).
        for i in range(lo, hi):
            a = here[i]
            a_in, a_out = a.t_in, a.t_out
            if b_in > a_out + w or b_out < a_in - w:
                continue
            if (a_out + w if a_out + w < b_out else b_out) - (a_in - w if a_in - w > b_in else b_in) < min_overlap:
                continue
            overlap = (a_out if a_out < b_out else b_out) - (a_in if a_in > b_in else b_in)
            yield Exposure(b.venue_id, a, b, overlap if overlap > 0 else 0)


def exposures_of(
    sources: list[Visit],
    candidates: Iterable[Visit],
    *,
    exclude: set[str],
    window: int | WindowFor,
    min_overlap: int,
    max_visit: int | None = None,
) -> dict[str, list[Exposure]]:
    """Every qualifying exposure of every candidate person to any of ``sources``, by person."""
    found: dict[str, list[Exposure]] = {}
    for hit in matches(
        sources, candidates, exclude=exclude, window=window, min_overlap=min_overlap, max_visit=max_visit
    ):
        found.setdefault(hit.contact_visit.person_id, []).append(hit)
    for hits in found.values():
        hits.sort(key=exposure_order)
    return found


def earliest_exposure_start(hits: list[Exposure]) -> int:
    """Depth 2: a contact is traced from the ``contact_visit.t_in`` of its earliest exposure."""
    return min(e.contact_visit.t_in for e in hits)
