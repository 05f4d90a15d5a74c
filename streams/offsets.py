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

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from faust.types import TP
from prometheus_client import Counter

logger = logging.getLogger(__name__)

SKIPPED = Counter("truyvet_streams_records_skipped_total",
                  "Records not processed: second copies, records after a gap, not ready, other workers' partitions",
                  ["topic", "reason"])
GAP_SEEKS = Counter("truyvet_streams_gap_seeks_total",
                    "Partitions sought back to their cursor because records before later ones did not arrive",
                    ["topic"])


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

    def done(self, tp: TP, offset: int) -> None:
        """Record by record: the record at ``offset`` is handled; its partition's cursor moves past it."""
        if tp in self.next:
            self.next[tp] = max(self.next[tp], offset + 1)

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


class IntakeCursors(Cursors):
    """:class:`Cursors` of one topic consumed by one agent of a faust ``app`` (topic made with ``acks=False``).

    Per batch: ``batch_next = await cursors.batch()`` (None: rebalancing or recovering; skip the batch,
    faust reads it again), :meth:`process` / :meth:`process_run` its records, ``offsets =
    cursors.advance(batch_next)``, then ``await cursors.commit_offsets(offsets)`` once the batch's effects
    are stored. Record by record: :meth:`take`, :meth:`done`, :meth:`commit_done`. :meth:`heal` (from a
    timer) seeks back partitions with a lasting gap.
    """

    def __init__(self, app: Any, topic: str, gap_patience: float = 10.0) -> None:
        super().__init__(gap_patience=gap_patience)
        self.app = app
        self.topic = topic

    def skipped(self, reason: str, n: int = 1) -> None:
        SKIPPED.labels(self.topic, reason).inc(n)

    def process(self, batch_next: dict[TP, int], tp: TP, offset: int) -> bool:
        decision = self.decide(batch_next, tp, offset)
        if decision is not Decision.PROCESS:
            self.skipped(decision.value)
        return decision is Decision.PROCESS

    def process_run(self, batch_next: dict[TP, int], tp: TP, records: list[Any]) -> list[Any]:
        """The records of one partition (``.offset`` ascending) to process, deciding each as :meth:`process`.

        The usual run starts at the cursor without holes and is taken whole, in constant time.
        """
        if not records:
            return []
        first, last = records[0].offset, records[-1].offset
        if batch_next.get(tp) == first and last - first == len(records) - 1:
            batch_next[tp] = last + 1
            self.gap_since.pop(tp, None)
            return records
        return [record for record in records if self.process(batch_next, tp, record.offset)]

    async def batch(self) -> dict[TP, int] | None:
        """A batch's working copy of the cursors of the partitions held; None while not ready."""
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return None
        consumer = app.consumer
        if self.generation != app.consumer_generation_id:
            self.reset(app.consumer_generation_id)
        held = {tp for tp in consumer.assignment() if tp.topic == self.topic}
        missing = self.missing(held)
        if missing:
            # faust sought every partition to its committed offset when the rebalance ended (None:
            # nothing committed yet, or 0); without a commit the consumer starts at the earliest offset.
            committed = {tp: consumer._committed_offset.get(tp) for tp in missing}
            unknown = [tp for tp, offset in committed.items() if offset is None or offset < 0]
            earliest = await consumer.earliest_offsets(*unknown) if unknown else {}
            for tp, offset in committed.items():
                start = offset if offset is not None and offset >= 0 else earliest.get(tp, 0)
                self.start(tp, start)
                # Records fetched before the rebalance ended may have been dropped on the way (not
                # ready); read again from the cursor rather than wait for the gap to show.
                await consumer.seek(tp, start)
        return {tp: self.next[tp] for tp in held}

    async def commit_offsets(self, offsets: dict[TP, int]) -> None:
        """Commit offsets returned by :meth:`advance` once everything before them is stored (faust
        flushes its producer first)."""
        if offsets and await self.app.consumer._commit_offsets(offsets):
            self.committed_to(offsets)

    def invalidate(self) -> None:
        """Forget the cursors (a batch they moved past was not stored): the next :meth:`batch` starts
        every partition again from the committed offsets, as after a rebalance."""
        self.generation = None

    # -- record by record (an agent iterating ``stream.events()``, e.g. to write tables keyed by the event) --
    async def take(self, tp: TP, offset: int) -> bool:
        """True if the record is the next one of its partition; call :meth:`done` once it is handled."""
        if await self.batch() is None:
            self.skipped("not_ready")
            return False
        return self.process(dict(self.next), tp, offset)

    async def commit_done(self) -> None:
        """Commit the cursors moved by :meth:`done` (from a timer: every record before them is handled)."""
        await self.commit_offsets(self.advance(dict(self.next)))

    async def heal(self) -> None:
        held = self.app.consumer.assignment()
        for tp, offset in self.stale_gaps().items():
            if tp in held and not self.app.rebalancing:
                GAP_SEEKS.labels(self.topic).inc()
                logger.warning("records of %s from offset %d did not arrive; seeking back to it", tp, offset)
                await self.app.consumer.seek(tp, offset)
