"""One person's state and what a scan changes in it; no Kafka or faust here, so it is easy to test.

Replay safety. Every scan in state remembers the offset of the ``scans`` record that
brought it. Records of one person sit on one partition and are processed in offset order, and the
worker commits an offset only after ClickHouse took the rows of every record before it. So when a
record at offset ``o`` arrives, the person's scans with offsets below ``o`` are exactly the ones
whose rows ClickHouse already holds; scans at ``o`` or later in state came from records processed
before a crash or rebalance but perhaps never written, and they are dropped (:meth:`PersonState.rewind`)
to be re-added, in order, when their records are redelivered. Each record's rows are therefore a pure
function of the record sequence up to it: a replay writes the same rows with the same versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from streams.visits import Change, Scan, Timeline, VisitSpan, diff, person_visits


@dataclass
class PersonState:
    """The scans of one person within the state horizon (table value in the worker)."""

    scans: dict[str, Scan] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)  # scan_id -> offset of the record that added it
    pruned_before: int = 0  # scans older than this were dropped from state; 0: nothing dropped
    # The visits of ``scans`` (derived, never stored): kept while the worker holds this object, so a
    # scan arriving in time order costs a look at the last ``max_stay``, not at the whole state.
    timeline: Timeline | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"s": [[*s, self.offsets.get(k, -1)] for k, s in self.scans.items()], "p": self.pruned_before}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> PersonState:
        if not value:
            return cls()
        scans = {row[3]: Scan(*row[:4]) for row in value["s"]}
        offsets = {row[3]: (row[4] if len(row) > 4 else -1) for row in value["s"]}
        return cls(scans, offsets, value.get("p", 0))

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> PersonState:
        return cls.from_json(orjson.loads(raw) if raw else None)

    def rewind(self, offset: int) -> int:
        """Forget scans added by records at ``offset`` or later (not yet known to be in ClickHouse)."""
        later = [k for k, o in self.offsets.items() if o >= offset]
        for key in later:
            del self.scans[key]
            del self.offsets[key]
        if later:
            self.timeline = None
        return len(later)


class Outcome(NamedTuple):  # one per record: a NamedTuple is several times cheaper to make than a dataclass
    upserts: list[VisitSpan]
    deletes: list[VisitSpan]
    duplicate: str | None  # "scan_id" | "window" | None
    rewound: int = 0  # scans dropped from state because this record is a redelivery


@dataclass(frozen=True)
class VisitRules:
    stay_for: Callable[[str], int]
    max_stay: int
    dedup_window: int
    horizon: int

    def visits(self, scans: list[Scan]) -> dict[str, VisitSpan]:
        return person_visits(scans, stay_for=self.stay_for, max_stay=self.max_stay,
                             dedup_window=self.dedup_window)

    def timeline(self, scans: list[Scan]) -> Timeline:
        return Timeline(scans, stay_for=self.stay_for, max_stay=self.max_stay, dedup_window=self.dedup_window)


def apply_scan(state: PersonState, scan: Scan, offset: int, rules: VisitRules) -> Outcome:
    """:func:`apply_batch` for one record."""
    return apply_batch(state, [(offset, scan)], rules)[0]


def apply_batch(state: PersonState, records: list[tuple[int, Scan]], rules: VisitRules, *,
                incremental: bool = True) -> list[Outcome]:
    """Add one person's scans of a batch (``(offset, scan)`` in offset order) to ``state`` in place.

    One :class:`Outcome` per record: the visit changes that record makes, to be written with version
    = its offset + 1. Each record's "after" is the next one's "before", so a record costs one visit
    computation, and a scan later than every scan in state (the usual case) only the part of it
    within the maximum stay (:class:`~streams.visits.Timeline`; ``incremental=False`` recomputes all,
    for the tests). (Writing only the net change of the whole batch would be cheaper still, but is not
    replay-safe: a lost run with other batch boundaries may have written an intermediate state that
    the net change never overwrites; the crash simulation in the tests catches it.)
    A ``scan_id`` already in state (after :meth:`PersonState.rewind`) came with an earlier record:
    this copy changes nothing (the first copy wins).
    """
    rewound = state.rewind(records[0][0])  # later records' offsets are higher: nothing more to rewind
    timeline = state.timeline if incremental else None
    if timeline is None:
        timeline = rules.timeline(list(state.scans.values()))
    outcomes = []
    for offset, scan in records:
        if scan.scan_id in state.scans:
            outcomes.append(Outcome([], [], "scan_id", rewound))
            rewound = 0
            continue
        state.scans[scan.scan_id] = scan
        state.offsets[scan.scan_id] = offset
        complete_from = state.pruned_before + rules.max_stay + rules.dedup_window if state.pruned_before else 0
        if incremental and timeline.follows(scan):
            changed = timeline.append(scan)
            # A scan that opens, closes or is no visit was a near-duplicate.
            duplicate = "window" if changed is None else None
            change = Change([v for v in changed or () if v.t_in >= complete_from], [])
        else:
            before = timeline.visits
            timeline = rules.timeline(list(state.scans.values()))
            change = diff(before, timeline.visits, complete_from=complete_from)
            # Every accepted scan opens, closes or is a visit, so one that appears in none was a near-duplicate.
            duplicate = None
            if not any(scan.scan_id in (v.source_in, v.source_out) for v in timeline.visits.values()):
                duplicate = "window"
        # Same test as _prune's (a scan older than the horizon before the newest), without its scans.
        if timeline.newest is not None and timeline.oldest is not None \
                and timeline.oldest < timeline.newest[0] - rules.horizon and _prune(state, rules.horizon):
            timeline = rules.timeline(list(state.scans.values()))
        outcomes.append(Outcome(change.upserts, change.deletes, duplicate, rewound))
        rewound = 0
    state.timeline = timeline
    return outcomes


def _prune(state: PersonState, horizon: int) -> bool:
    """Drop scans older than the horizon before the newest; True if any went."""
    newest = max(s.t for s in state.scans.values())
    cutoff = newest - horizon
    old = [k for k, s in state.scans.items() if s.t < cutoff]
    for key in old:
        del state.scans[key]
        state.offsets.pop(key, None)
    if old:
        state.pruned_before = max(state.pruned_before, cutoff)
    return bool(old)
