"""F1/F2 tracing: one batched query round per generation (person visits, then venue co-visitors)."""

from __future__ import annotations

from dataclasses import dataclass

from trace_api import queries
from trace_api.tracing import Exposure, exposures_of, overlapping
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
    window: int  # seconds
    min_overlap: int  # seconds
    max_stay: int  # seconds


def trace(db: Database, *, person_id: str, start: int, end: int, params: TraceParams) -> tuple[list, list[Contact]]:
    """Return (case visits, contacts) for a case ``person_id`` infectious over ``[start, end]``."""
    case_visits = overlapping(queries.person_visits(db, [person_id], start, end, params.max_stay), start, end)
    candidates = queries.venue_visits(db, case_visits, params.window, params.max_stay)
    first = exposures_of(case_visits, candidates, exclude={person_id}, window=params.window,
                         min_overlap=params.min_overlap)
    contacts = [Contact(p, 1, None, hits) for p, hits in sorted(first.items())]
    if params.depth < 2 or not first:
        return case_visits, contacts

    # Each F1 is traced like a case from the t_in of their earliest exposure to the case's end.
    starts = {p: min(e.contact_visit.t_in for e in hits) for p, hits in first.items()}
    f1_all = queries.person_visits(db, sorted(first), min(starts.values()), end, params.max_stay)
    f1_visits = [v for v in f1_all if v.t_in <= end and v.t_out >= starts[v.person_id]]
    candidates2 = queries.venue_visits(db, f1_visits, params.window, params.max_stay)
    exclude = {person_id, *first}
    second: dict[str, tuple[str, list[Exposure]]] = {}
    for f1 in sorted(first, key=lambda p: (starts[p], p)):
        own = [v for v in f1_visits if v.person_id == f1]
        found = exposures_of(own, candidates2, exclude=exclude, window=params.window, min_overlap=params.min_overlap)
        for person, hits in found.items():
            second.setdefault(person, (f1, hits))  # the first F1 (earliest exposure) through whom they qualify
    contacts += [Contact(p, 2, via, hits) for p, (via, hits) in sorted(second.items())]
    return case_visits, contacts
