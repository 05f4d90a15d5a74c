"""Visits from one person's scans, by the contract's rules (docs/tracing.md).

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

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import NamedTuple

from truyvet.scan import IN, OUT, Scan

__all__ = ["IN", "OUT", "Scan", "VisitSpan"]

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
        visit = in_visit(scans, i, stay_for, max_stay)
        if visit.source_out:
            used_outs.add(visit.source_out)
        visits[visit.visit_id] = visit
    for scan in scans:
        if scan.direction == OUT and scan.scan_id not in used_outs:
            visits["o" + scan.scan_id] = orphan_visit(scan, stay_for)
    return visits


def in_visit(scans: list[Scan], i: int, stay_for: Callable[[str], int], max_stay: int) -> VisitSpan:
    """The visit opened by the ``in`` scan ``scans[i]`` (accepted scans in :func:`sort_scans` order)."""
    scan = scans[i]
    limit = scan.t + max_stay
    closing: Scan | None = None
    cut: int | None = None
    for j in range(i + 1, len(scans)):  # indices, not a slice: the list runs far past the window
        later = scans[j]
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
    visit_id = "i" + scan.scan_id
    return VisitSpan(visit_id, scan.venue_id, scan.t, t_out, scan.scan_id, source_out)


def orphan_visit(scan: Scan, stay_for: Callable[[str], int]) -> VisitSpan:
    """The visit of an ``out`` scan that closes no visit: ``[t - default stay, t]``."""
    return VisitSpan("o" + scan.scan_id, scan.venue_id, scan.t - stay_for(scan.venue_id), scan.t, "", scan.scan_id)


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


class Timeline:
    """:func:`person_visits` of a person's scans, kept up to date as scans arrive in time order.

    Scans usually arrive in time order. A scan that sorts after every scan already held (in
    :func:`sort_scans` order) changes only what lies within the maximum stay before it: its own
    near-duplicate check looks back, and only ``in`` scans at most ``max_stay`` earlier can be closed
    or cut by it (an earlier closing ``out`` stays the closing one, and an ``in`` after an ``out`` is
    strictly later, so it cuts no visit that ``out`` closed). :meth:`append` therefore recomputes, with
    the same :func:`in_visit`, only the visits of those ``in`` scans, and the result equals
    :func:`person_visits` of all the scans
    (``tests/unit/streams/test_timeline.py`` checks it record by record). Any other change (an
    earlier scan, scans removed) is the caller's cue to build a new timeline.
    """

    __slots__ = ("stay_for", "max_stay", "dedup_window", "newest", "oldest", "accepted", "times", "last", "visits")

    def __init__(self, scans: Iterable[Scan], *, stay_for: Callable[[str], int], max_stay: int,
                 dedup_window: int) -> None:
        self.stay_for = stay_for
        self.max_stay = max_stay
        self.dedup_window = dedup_window
        ordered = sort_scans(scans)
        self.newest: tuple[int, int, str] | None = ordered[-1].order if ordered else None
        self.oldest: int | None = ordered[0].t if ordered else None
        self.accepted: list[Scan] = []
        self.last: dict[tuple[str, str], int] = {}
        for scan in ordered:
            self._accept(scan)
        self.times = [s.t for s in self.accepted]
        self.visits = build_visits(self.accepted, stay_for, max_stay)

    def _accept(self, scan: Scan) -> bool:
        key = (scan.venue_id, scan.direction)
        previous = self.last.get(key)
        if self.dedup_window > 0 and previous is not None and scan.t - previous <= self.dedup_window:
            return False
        self.last[key] = scan.t
        self.accepted.append(scan)
        return True

    def follows(self, scan: Scan) -> bool:
        """True if ``scan`` sorts after every scan held (so :meth:`append` may take it)."""
        newest = self.newest
        return newest is None or (scan.t, 0 if scan.direction == IN else 1, scan.scan_id) > newest

    def append(self, scan: Scan) -> list[VisitSpan] | None:
        """Add a scan that :meth:`follows`; the visits it creates or changes, None if it is a near-duplicate.

        Appending never removes a visit, so there is nothing to delete.
        """
        self.newest = (scan.t, 0 if scan.direction == IN else 1, scan.scan_id)
        if self.oldest is None:
            self.oldest = scan.t
        if not self._accept(scan):
            return None
        self.times.append(scan.t)
        accepted, visits = self.accepted, self.visits
        changed = []
        used = False
        # Only earlier ``in`` scans the new one can close (an ``out`` at their venue) or cut (an ``in``
        # elsewhere, strictly later) are looked at again.
        for i in range(bisect_left(self.times, scan.t - self.max_stay), len(accepted) - 1):
            earlier = accepted[i]
            if earlier.direction != IN:
                continue
            current = visits["i" + earlier.scan_id]
            if scan.direction == OUT:
                if earlier.venue_id != scan.venue_id:
                    continue
            elif earlier.venue_id == scan.venue_id or earlier.t == scan.t or current.t_out <= scan.t:
                continue  # an in cuts only a visit of another venue, started earlier, still open at its time
            visit = in_visit(accepted, i, self.stay_for, self.max_stay)
            if visit.source_out == scan.scan_id:
                used = True
            if current != visit:
                visits[visit.visit_id] = visit
                changed.append(visit)
        if scan.direction == IN:
            visit = in_visit(accepted, len(accepted) - 1, self.stay_for, self.max_stay)
        elif not used:
            visit = orphan_visit(scan, self.stay_for)
        else:
            return changed
        visits[visit.visit_id] = visit
        changed.append(visit)
        return changed
