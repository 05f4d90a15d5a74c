"""A plain-Python reference of the contract's visit rules (docs/tracing.md).

Written independently of ``streams/visits.py`` (whole-list filters instead of its forward scan) so
that the two check each other. The choices where the contract is silent are the ones documented in
``streams/visits.py``: scans order by (time, ``in`` before ``out``, scan_id); the cut needs an ``in``
elsewhere strictly later; an ``out`` is used when it ends a visit, otherwise it is an orphan; the first
copy of a ``scan_id`` (in arrival order) wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

HOUR = 3600
DAY = 24 * HOUR
MINUTE = 60


@dataclass(frozen=True)
class RefScan:
    scan_id: str
    person_id: str
    venue_id: str
    t: int  # epoch seconds
    direction: str  # "in" | "out"


@dataclass(frozen=True)
class RefVisit:
    visit_id: str
    person_id: str
    venue_id: str
    t_in: int
    t_out: int


def _rank(s: RefScan) -> tuple[int, int, str]:
    return (s.t, 0 if s.direction == "in" else 1, s.scan_id)


def reference_visits(
    arrivals: Iterable[RefScan],
    *,
    stay_for: Callable[[str], int],
    max_stay: int = 12 * HOUR,
    dedup_window: int = 10 * MINUTE,
) -> dict[str, RefVisit]:
    """Every person's visits from scans in arrival order; keyed by visit id ("i"/"o" + scan_id)."""
    first: dict[str, RefScan] = {}
    for scan in arrivals:
        first.setdefault(scan.scan_id, scan)
    by_person: dict[str, list[RefScan]] = {}
    for scan in first.values():
        by_person.setdefault(scan.person_id, []).append(scan)
    result: dict[str, RefVisit] = {}
    for person, scans in by_person.items():
        result.update(_person(person, scans, stay_for, max_stay, dedup_window))
    return result


def _person(person: str, scans: list[RefScan], stay_for: Callable[[str], int], max_stay: int,
            dedup_window: int) -> dict[str, RefVisit]:
    ordered = sorted(scans, key=_rank)
    kept: list[RefScan] = []
    for s in ordered:
        previous = [k.t for k in kept if k.venue_id == s.venue_id and k.direction == s.direction]
        if previous and s.t - max(previous) <= dedup_window:
            continue  # near-duplicate of the last accepted scan of this venue and direction
        kept.append(s)
    ins = [s for s in kept if s.direction == "in"]
    outs = [s for s in kept if s.direction == "out"]
    visits: dict[str, RefVisit] = {}
    used: set[str] = set()
    for a in ins:
        closers = [o for o in outs if o.venue_id == a.venue_id and _rank(o) > _rank(a) and o.t <= a.t + max_stay]
        closer = min(closers, key=_rank) if closers else None
        cuts = [b.t for b in ins if b.venue_id != a.venue_id and b.t > a.t]
        cut = min(cuts) if cuts else None
        end = closer.t if closer else a.t + min(stay_for(a.venue_id), max_stay)
        if cut is not None and cut < end:
            end = cut
        elif closer is not None:
            used.add(closer.scan_id)
        visits["i" + a.scan_id] = RefVisit("i" + a.scan_id, person, a.venue_id, a.t, end)
    for o in outs:
        if o.scan_id not in used:
            visits["o" + o.scan_id] = RefVisit("o" + o.scan_id, person, o.venue_id, o.t - stay_for(o.venue_id), o.t)
    return visits
