"""A plain-Python reference of the contract's contact rule (docs/tracing.md).

Written from the contract's text, independently of ``trace_api/tracing.py`` and ``contacts.py``:
brute force over every pair of visits, no indexes, no range narrowing. Times are epoch seconds;
intervals are closed. Where the contract is silent the choice is documented here and in the trace
API: a depth-2 period that would start after the case's ``infectious_to`` is empty (no visits).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

MINUTE = 60


@dataclass(frozen=True)
class RefVisit:
    visit_id: str
    person_id: str
    venue_id: str
    t_in: int
    t_out: int


# An exposure as the API shows it: venue, case visit span, contact visit span, overlap minutes.
RefExposure = tuple[str, int, int, int, int, float]


@dataclass
class RefContact:
    generation: int
    # via person (None for generation 1) -> that person's exposures; the API may pick any one via.
    through: dict[str | None, list[RefExposure]] = field(default_factory=dict)


def infectious_visits(visits: Iterable[RefVisit], person: str, start: int, end: int) -> list[RefVisit]:
    """The person's visits that overlap the closed interval [start, end]."""
    if start > end:
        return []
    return [v for v in visits if v.person_id == person and v.t_in <= end and v.t_out >= start]


def qualifies(a: RefVisit, b: RefVisit, window: int, min_overlap: int) -> bool:
    """b is exposed to case visit a: same venue, within the window, widened overlap at least M."""
    if a.venue_id != b.venue_id:
        return False
    lo, hi = a.t_in - window, a.t_out + window
    if not (b.t_in <= hi and b.t_out >= lo):
        return False
    return min(hi, b.t_out) - max(lo, b.t_in) >= min_overlap


def shown(a: RefVisit, b: RefVisit) -> RefExposure:
    overlap = max(0, min(a.t_out, b.t_out) - max(a.t_in, b.t_in))
    return (a.venue_id, a.t_in, a.t_out, b.t_in, b.t_out, round(overlap / MINUTE, 2))


def _exposed(sources: list[RefVisit], visits: list[RefVisit], skip: set[str], window: int,
             min_overlap: int) -> dict[str, list[RefExposure]]:
    found: dict[str, list[RefExposure]] = {}
    for b in visits:
        if b.person_id in skip:
            continue
        for a in sources:
            if qualifies(a, b, window, min_overlap):
                found.setdefault(b.person_id, []).append(shown(a, b))
    return found


def expected_contacts(visits: list[RefVisit], case_person: str, start: int, end: int, *, window: int,
                      min_overlap: int, depth: int) -> dict[str, RefContact]:
    """person -> what the contract says the contacts list holds for them (window, min_overlap in seconds)."""
    first = _exposed(infectious_visits(visits, case_person, start, end), visits, {case_person}, window,
                     min_overlap)
    result = {p: RefContact(1, {None: sorted(hits)}) for p, hits in first.items()}
    if depth < 2:
        return result
    skip = {case_person, *first}
    for f1, hits in first.items():
        f1_start = min(h[3] for h in hits)  # contact_visit.t_in of the earliest exposure
        sources = infectious_visits(visits, f1, f1_start, end)
        for person, second in _exposed(sources, visits, skip, window, min_overlap).items():
            result.setdefault(person, RefContact(2)).through[f1] = sorted(second)
    return result
