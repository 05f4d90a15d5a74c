"""Visits from one person's scans, by the contract's rules (CONTRACT.md, "Tracing semantics").

Everything here is a pure function of the *set* of a person's scans, so the visits do not depend
on the order in which scans arrive: a late or shuffled scan changes the set, the worker recomputes
and emits the difference. Times are integer epoch seconds (the contract compares to the second).

Choices where the contract is silent (also in the README):
- Scans sort by time, then ``in`` before ``out``, then scan_id; an ``out`` in the same second as
  an ``in`` at that venue closes it.
- The cut at "the next ``in`` at a different venue" needs a strictly later time.
- An ``out`` is "used" when it is the end of some visit; an ``out`` after the visit was cut (or
  beyond the maximum stay) has no open visit and becomes an orphan visit ``[t - stay, t]``.
- Several ``in`` scans at one venue before one ``out`` all end at that ``out``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

IN = "in"
OUT = "out"


class Scan(NamedTuple):
    """A scan as the worker keeps it in state (compact: the table stores lists of these)."""

    t: int
    direction: str
    venue_id: str
    scan_id: str

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.t, 0 if self.direction == IN else 1, self.scan_id)


class VisitSpan(NamedTuple):
    visit_id: str
    venue_id: str
    t_in: int
    t_out: int
    source_in: str
    source_out: str


def sort_scans(scans: Iterable[Scan]) -> list[Scan]:
    return sorted(scans, key=lambda s: s.order)


def accepted(scans: Iterable[Scan], dedup_window: int) -> list[Scan]:
    """Drop near-duplicates: same venue and direction within ``dedup_window`` s of the last accepted one."""
    last: dict[tuple[str, str], int] = {}
    kept = []
    for scan in sort_scans(scans):
        key = (scan.venue_id, scan.direction)
        previous = last.get(key)
        if dedup_window > 0 and previous is not None and scan.t - previous <= dedup_window:
            continue
        last[key] = scan.t
        kept.append(scan)
    return kept


def build_visits(scans: list[Scan], stay_for: Callable[[str], int], max_stay: int) -> dict[str, VisitSpan]:
    """Visits from accepted scans sorted by :func:`sort_scans`; keyed by deterministic visit id.

    :param stay_for: venue_id -> default stay in seconds (venue's own, else its category's).
    :param max_stay: the longest an ``out`` may follow its ``in`` to pair with it, in seconds.
    """
    visits: dict[str, VisitSpan] = {}
    used_outs: set[str] = set()
    for i, scan in enumerate(scans):
        if scan.direction != IN:
            continue
        limit = scan.t + max_stay
        closing: Scan | None = None
        cut: int | None = None
        for later in scans[i + 1:]:
            if later.t > limit:
                break
            if closing is None and later.direction == OUT and later.venue_id == scan.venue_id:
                closing = later
            if cut is None and later.direction == IN and later.venue_id != scan.venue_id and later.t > scan.t:
                cut = later.t
            if closing is not None and cut is not None:
                break
        t_out = closing.t if closing is not None else scan.t + min(stay_for(scan.venue_id), max_stay)
        source_out = closing.scan_id if closing is not None else ""
        if cut is not None and cut < t_out:
            t_out, source_out = cut, ""
        if source_out:
            used_outs.add(source_out)
        visit_id = "i" + scan.scan_id
        visits[visit_id] = VisitSpan(visit_id, scan.venue_id, scan.t, t_out, scan.scan_id, source_out)
    for scan in scans:
        if scan.direction == OUT and scan.scan_id not in used_outs:
            visit_id = "o" + scan.scan_id
            visits[visit_id] = VisitSpan(visit_id, scan.venue_id, scan.t - stay_for(scan.venue_id), scan.t,
                                         "", scan.scan_id)
    return visits


def person_visits(
    scans: Iterable[Scan], *, stay_for: Callable[[str], int], max_stay: int, dedup_window: int
) -> dict[str, VisitSpan]:
    """All visits of one person from the set of their scans (the whole rule in one call)."""
    return build_visits(accepted(scans, dedup_window), stay_for, max_stay)


class Change(NamedTuple):
    upserts: list[VisitSpan]
    deletes: list[VisitSpan]


def diff(before: dict[str, VisitSpan], after: dict[str, VisitSpan], *, complete_from: int) -> Change:
    """What to write so ClickHouse goes from ``before`` to ``after``.

    :param complete_from: only visits starting at or after this time are compared; older ones lie
        where the worker's state no longer holds their whole context.
    """
    upserts = [v for k, v in after.items() if v.t_in >= complete_from and before.get(k) != v]
    deletes = [v for k, v in before.items() if v.t_in >= complete_from and k not in after]
    return Change(upserts, deletes)
