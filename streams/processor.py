"""One person's state and what a scan changes in it; no Kafka or faust here, so it is easy to test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.visits import Scan, VisitSpan, diff, person_visits
from truyvet.events import ScanEvent


@dataclass
class PersonState:
    """The scans of one person within the state horizon (table value in the worker)."""

    scans: dict[str, Scan] = field(default_factory=dict)
    pruned_before: int = 0  # scans older than this were dropped from state; 0: nothing dropped

    def to_json(self) -> dict[str, Any]:
        return {"s": [list(s) for s in self.scans.values()], "p": self.pruned_before}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> PersonState:
        if not value:
            return cls()
        return cls({row[3]: Scan(*row) for row in value["s"]}, value.get("p", 0))


@dataclass(frozen=True)
class Outcome:
    upserts: list[VisitSpan]
    deletes: list[VisitSpan]
    duplicate: str | None  # "scan_id" | "window" | None


@dataclass(frozen=True)
class VisitRules:
    stay_for: Callable[[str], int]
    max_stay: int
    dedup_window: int
    horizon: int

    def visits(self, scans: list[Scan]) -> dict[str, VisitSpan]:
        return person_visits(scans, stay_for=self.stay_for, max_stay=self.max_stay, dedup_window=self.dedup_window)


def scan_of(event: ScanEvent) -> Scan:
    return Scan(int(event.scanned_at.timestamp()), event.direction.value, event.venue_id, str(event.scan_id))


def apply_scan(state: PersonState, scan: Scan, rules: VisitRules) -> Outcome:
    """Add ``scan`` to ``state`` (in place) and return the visit changes it causes.

    A scan already in state (redelivery or client resend) is still diffed against the state without
    it, so a batch that was processed but never reached ClickHouse before a crash is rewritten.
    """
    known = scan.scan_id in state.scans
    if known:
        scan = state.scans[scan.scan_id]  # the first copy wins
    others = [s for s in state.scans.values() if s.scan_id != scan.scan_id]
    before = rules.visits(others)
    after = rules.visits([*others, scan])
    state.scans[scan.scan_id] = scan
    complete_from = state.pruned_before + rules.max_stay + rules.dedup_window if state.pruned_before else 0
    change = diff(before, after, complete_from=complete_from)
    # Every accepted scan opens, closes or is a visit, so one that appears in none was a near-duplicate.
    duplicate = None
    if known:
        duplicate = "scan_id"
    elif not any(scan.scan_id in (v.source_in, v.source_out) for v in after.values()):
        duplicate = "window"
    _prune(state, rules.horizon)
    return Outcome(change.upserts, change.deletes, duplicate)


def _prune(state: PersonState, horizon: int) -> None:
    newest = max(s.t for s in state.scans.values())
    cutoff = newest - horizon
    old = [k for k, s in state.scans.items() if s.t < cutoff]
    if old:
        for key in old:
            del state.scans[key]
        state.pruned_before = max(state.pruned_before, cutoff)
