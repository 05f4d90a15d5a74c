"""Which intake records to process, and which offsets to commit: the worker's own cursor per partition.

faust commits an offset once every record before it is acknowledged. Two things break that after a
restart (seen in the ``kill -9`` test, about one run in two): records fetched while the tables are
still recovering reach the stream and are delivered again after faust seeks back to the committed
offsets, and a record skipped by the stream during a rebalance is never acknowledged. Two copies of
one offset confuse faust's acknowledgement bookkeeping (an offset counted, then dropped with a
commit that a seek later undid) and a never-acknowledged one stops the partition's commits for good:
the worker kept processing, but its committed offset stood still, so the next restart would replay
everything since, and a record lost between the two copies would never reach ClickHouse.

So the intake topic is consumed without faust's acknowledgements (``acks=False``) and the agent keeps
the cursor itself: per partition, the next offset it must process. A record at the cursor is processed;
one below it was processed already (a second copy; skipped); one above it means records in between did
not arrive, so it is skipped and, if the gap stays, the partition is sought back to the cursor.
After ClickHouse accepted a batch the cursors are committed. A cursor starts, after every rebalance
and once table recovery is complete, at the group's committed offset (faust has just sought there).
Only records of one partition in offset order ever move its cursor, so "committed" always means
"every record before it was processed and written".
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from faust.types import TP


class Decision(Enum):
    PROCESS = "process"
    SECOND_COPY = "second_copy"  # below the cursor: already processed
    GAP = "gap"  # above the cursor: the records in between have not arrived
    NOT_OURS = "not_ours"  # partition not (or not yet) assigned to this worker


@dataclass
class Cursors:
    """Per-partition next offset to process; a batch works on a copy and :meth:`advance` keeps it."""

    gap_patience: float = 10.0  # seconds a gap may last before the partition is sought back
    generation: int | None = None
    next: dict[TP, int] = field(default_factory=dict)
    committed: dict[TP, int] = field(default_factory=dict)
    gap_since: dict[TP, float] = field(default_factory=dict)

    def reset(self, generation: int) -> None:
        """A new group generation: every cursor starts again from the committed offsets."""
        self.generation = generation
        self.next.clear()
        self.committed.clear()
        self.gap_since.clear()

    def missing(self, tps: Iterable[TP]) -> set[TP]:
        return {tp for tp in tps if tp not in self.next}

    def start(self, tp: TP, offset: int) -> None:
        self.next[tp] = offset
        self.committed[tp] = offset

    def decide(self, batch_next: dict[TP, int], tp: TP, offset: int) -> Decision:
        """Decide one record against the batch's working cursors (``batch_next``, a copy of :attr:`next`)."""
        expected = batch_next.get(tp)
        if expected is None:
            return Decision.NOT_OURS
        if offset < expected:
            return Decision.SECOND_COPY
        if offset > expected:
            self.gap_since.setdefault(tp, time.monotonic())
            return Decision.GAP
        batch_next[tp] = offset + 1
        self.gap_since.pop(tp, None)  # the awaited record came
        return Decision.PROCESS

    def advance(self, batch_next: dict[TP, int]) -> dict[TP, int]:
        """Keep a written batch's cursors; return the offsets to commit (those that moved)."""
        moved = {}
        for tp, offset in batch_next.items():
            if tp in self.next and offset > self.next[tp]:
                self.next[tp] = offset
            if tp in self.next and self.next[tp] > self.committed.get(tp, -1):
                moved[tp] = self.next[tp]
        return moved

    def committed_to(self, offsets: dict[TP, int]) -> None:
        for tp, offset in offsets.items():
            self.committed[tp] = max(offset, self.committed.get(tp, offset))

    def stale_gaps(self) -> dict[TP, int]:
        """Partitions whose gap lasted longer than the patience: seek them back to their cursor."""
        now = time.monotonic()
        due = {tp: self.next[tp] for tp, since in self.gap_since.items()
               if tp in self.next and now - since >= self.gap_patience}
        for tp in due:
            self.gap_since[tp] = now  # give the seek time to bring the records
        return due
