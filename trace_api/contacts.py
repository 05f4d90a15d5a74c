"""F1/F2 tracing: one batched query round per generation (person-keyed visits, then venue co-visitors).

Choices where docs/tracing.md is silent (the reference model in tests/unit/trace_api/reference.py makes
the same ones):
- A generation-1 contact whose earliest exposure starts after the case's ``infectious_to`` has an
  empty depth-2 period: no visits, no generation-2 contacts through them.
- ``via_person_id`` is the F1 with the earliest exposure start (then the smallest id) among those
  through whom the person qualifies; the exposures listed are the ones through that F1.
- Exposures are ordered by contact visit start, then case visit start; contacts by generation, then id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trace_api import queries
from trace_api.tracing import (
    Exposure,
    Visit,
    constant,
    earliest_exposure_start,
    exposure_order,
    exposures_of,
    matches,
    overlapping,
)
from truyvet.schema.db import Database


@dataclass(frozen=True)
class Contact:
    person_id: str
    generation: int
    via_person_id: str | None
    exposures: list[Exposure]


@dataclass(frozen=True)
class TraceParams:
    depth: int
    window: int  # seconds; the default W where no per-category window applies
    min_overlap: int  # seconds
    max_stay: int  # seconds: the longest any visit lasts (bounds the range reads)
    category_window: dict[str, int] = field(default_factory=dict)  # category -> W seconds

    @property
    def widest_window(self) -> int:
        return max([self.window, *self.category_window.values()])


@dataclass
class TraceResult:
    case_visits: list[Visit]
    contacts: list[Contact]
    queries: int = 0  # ClickHouse round trips, for the tests of the query design


def _windows(
    db: Any, reads: Any, visits: list[Visit], params: TraceParams, result: TraceResult
) -> Callable[[str], int]:
    if not params.category_window or not visits:
        return constant(params.window)
    categories = reads.venue_categories(db, {v.venue_id for v in visits})
    result.queries += 1
    return lambda venue: params.category_window.get(categories.get(venue, ""), params.window)


def trace(
    db: Database, *, person_id: str, start: int, end: int, params: TraceParams, reads: Any = queries
) -> TraceResult:
    """Contacts of a case ``person_id`` infectious over ``[start, end]`` (docs/tracing.md semantics).

    Generation 1: the case's visits (one person-keyed read), then everyone at those venues near
    those times (one venue-keyed read). Generation 2: the same two reads for all F1s at once.

    :param reads: where visits come from: :mod:`trace_api.queries` (ClickHouse), or anything with the
        same ``person_visits``/``venue_visits``/``venue_categories`` (the benchmark's PostgreSQL peer).
    """
    result = TraceResult([], [])
    result.case_visits = overlapping(reads.person_visits(db, [person_id], start, end, params.max_stay), start, end)
    result.queries += 1
    if not result.case_visits:
        return result
    window_for = _windows(db, reads, result.case_visits, params, result)
    candidates = reads.venue_visits(db, result.case_visits, params.widest_window, params.max_stay)
    result.queries += 1
    first = exposures_of(
        result.case_visits,
        candidates,
        exclude={person_id},
        window=window_for,
        min_overlap=params.min_overlap,
        max_visit=params.max_stay,
    )
    result.contacts = [Contact(p, 1, None, hits) for p, hits in sorted(first.items())]
    if params.depth < 2 or not first:
        return result

    # Each F1 is traced like a case from the t_in of their earliest exposure to the case's end.
    starts = {p: earliest_exposure_start(hits) for p, hits in first.items()}
    live = sorted(p for p, s in starts.items() if s <= end)
    if not live:
        return result
    f1_all = reads.person_visits(db, live, min(starts[p] for p in live), end, params.max_stay)
    result.queries += 1
    f1_visits = [v for v in f1_all if v.t_in <= end and v.t_out >= starts[v.person_id]]
    if not f1_visits:
        return result
    window_for = _windows(db, reads, f1_visits, params, result)
    candidates2 = reads.venue_visits(db, f1_visits, params.widest_window, params.max_stay)
    result.queries += 1
    # via = the F1 with the earliest exposure start (then the smallest id) through whom they qualify;
    # the exposures listed are those through that F1.
    through: dict[str, dict[str, list[Exposure]]] = {}
    for hit in matches(
        f1_visits,
        candidates2,
        exclude={person_id, *first},
        window=window_for,
        min_overlap=params.min_overlap,
        max_visit=params.max_stay,
    ):
        through.setdefault(hit.contact_visit.person_id, {}).setdefault(hit.case_visit.person_id, []).append(hit)
    for person in sorted(through):
        per_f1 = through[person]
        via = min(per_f1, key=lambda p: (starts[p], p))
        result.contacts.append(Contact(person, 2, via, sorted(per_f1[via], key=exposure_order)))
    return result
