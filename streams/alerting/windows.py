"""Streaming exposure matching as pure functions: a venue's active windows and what a visit meets.

The rule is the contact rule of ``truyvet.contact`` (docs/tracing.md), the trace API's too.
No faust or Kafka here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from truyvet.contact import meets
from truyvet.events import ExposureWindow, Visit


@dataclass(frozen=True)
class Match:
    window: ExposureWindow
    visit: Visit


def qualifies(w: ExposureWindow, b: Visit) -> bool:
    """The contact rule (truyvet.contact) between a window's source visit and a visit at its venue."""
    return w.venue_id == b.venue_id and meets(w.t_in, w.t_out, b.t_in, b.t_out, window=w.window,
                                              min_overlap=w.min_overlap)


class VenueWindows:
    """The active exposure windows of one venue (the value of the worker's table, as JSON)."""

    def __init__(self, windows: list[ExposureWindow] | None = None) -> None:
        self.windows = windows or []

    @classmethod
    def from_json(cls, value: list[dict[str, Any]] | None) -> VenueWindows:
        return cls([ExposureWindow.model_validate(w) for w in value or []])

    def to_json(self) -> list[dict[str, Any]]:
        return [w.model_dump() for w in self.windows]

    def add(self, window: ExposureWindow) -> bool:
        """Add ``window`` unless the same (case, generation, source visit) is there; True if added."""
        key = (window.case_id, window.generation, window.visit_id)
        for i, w in enumerate(self.windows):
            if (w.case_id, w.generation, w.visit_id) == key:
                if w != window:
                    self.windows[i] = window  # the source visit was updated
                    return True
                return False
        self.windows.append(window)
        return True

    def prune(self, now: int) -> int:
        """Drop windows whose follow-up period is over; return how many."""
        before = len(self.windows)
        self.windows = [w for w in self.windows if w.expires_at > now]
        return before - len(self.windows)

    def matches(self, visit: Visit) -> list[Match]:
        """Windows that make ``visit``'s person a contact (never the case or the generation-1 source)."""
        found = []
        for w in self.windows:
            if visit.person_id in (w.case_person_id, w.via_person_id):
                continue
            if qualifies(w, visit):
                found.append(Match(w, visit))
        # Lowest generation first, so a person is alerted at the lowest generation they qualify for.
        found.sort(key=lambda m: (m.window.generation, m.window.case_id, m.window.t_in))
        return found

    def matches_all(self, visits: list[Visit]) -> list[Match]:
        found = [m for v in visits for m in self.matches(v)]
        found.sort(key=lambda m: (m.window.generation, m.window.case_id, m.window.t_in))
        return found
